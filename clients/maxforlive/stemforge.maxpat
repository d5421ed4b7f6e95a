{
  "patcher": {
    "fileversion": 1,
    "appversion": {
      "major": 8,
      "minor": 6,
      "revision": 0,
      "architecture": "x64",
      "modernui": 1
    },
    "classnamespace": "box",
    "rect": [
      100,
      100,
      640,
      560
    ],
    "openinpresentation": 1,
    "default_fontsize": 10.0,
    "default_fontname": "Arial Bold",
    "gridsize": [
      8,
      8
    ],
    "boxes": [
      {
        "box": {
          "id": "obj-device",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 3,
          "patching_rect": [
            20,
            20,
            90,
            22
          ],
          "outlettype": [
            "bang",
            "int",
            "int"
          ],
          "text": "live.thisdevice"
        }
      },
      {
        "box": {
          "id": "obj-js",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            430,
            110,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "js live_api.js"
        }
      },
      {
        "box": {
          "id": "obj-node",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            20,
            300,
            330,
            22
          ],
          "outlettype": [
            "",
            ""
          ],
          "text": "node.script stemforge_node.js @autostart 1 @watch 0"
        }
      },
      {
        "box": {
          "id": "obj-route",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 7,
          "patching_rect": [
            20,
            340,
            330,
            22
          ],
          "outlettype": [
            "",
            "",
            "",
            "",
            "",
            "",
            ""
          ],
          "text": "route lom status progress error connected placed"
        }
      },
      {
        "box": {
          "id": "obj-callpre",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            370,
            85,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "prepend call"
        }
      },
      {
        "box": {
          "id": "obj-defer",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            400,
            60,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "deferlow"
        }
      },
      {
        "box": {
          "id": "obj-prompt",
          "maxclass": "textedit",
          "numinlets": 1,
          "numoutlets": 4,
          "patching_rect": [
            20,
            60,
            330,
            40
          ],
          "outlettype": [
            "",
            "int",
            "",
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            4,
            4,
            300,
            34
          ],
          "keymode": 1,
          "lines": 2,
          "hint": "prompt, e.g. warm analog bass"
        }
      },
      {
        "box": {
          "id": "obj-promptpre",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            110,
            95,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "prepend prompt"
        }
      },
      {
        "box": {
          "id": "obj-btn-generate",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            20,
            150,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "generate",
          "presentation": 1,
          "presentation_rect": [
            4,
            42,
            96,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-btn-regenerate",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            100,
            150,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "regenerate",
          "presentation": 1,
          "presentation_rect": [
            104,
            42,
            96,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-btn-inpaint",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            180,
            150,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "inpaint",
          "presentation": 1,
          "presentation_rect": [
            204,
            42,
            96,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-btn-keep",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            260,
            150,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "keep",
          "presentation": 1,
          "presentation_rect": [
            4,
            66,
            96,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-btn-release",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            340,
            150,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "release",
          "presentation": 1,
          "presentation_rect": [
            104,
            66,
            96,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-btn-cancel",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            420,
            150,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "cancel",
          "presentation": 1,
          "presentation_rect": [
            204,
            66,
            96,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-steps",
          "maxclass": "live.numbox",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            20,
            190,
            45,
            15
          ],
          "outlettype": [
            "",
            "float"
          ],
          "presentation": 1,
          "presentation_rect": [
            308,
            4,
            44,
            15
          ],
          "parameter_enable": 1,
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "Steps",
              "parameter_shortname": "Steps",
              "parameter_type": 1,
              "parameter_mmin": 1,
              "parameter_mmax": 1000,
              "parameter_initial": [
                50
              ],
              "parameter_initial_enable": 1
            }
          },
          "varname": "Steps"
        }
      },
      {
        "box": {
          "id": "obj-stepspre",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            215,
            90,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "prepend steps"
        }
      },
      {
        "box": {
          "id": "obj-statuspre",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            120,
            400,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "prepend set"
        }
      },
      {
        "box": {
          "id": "obj-status",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            120,
            460,
            330,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "not connected",
          "presentation": 1,
          "presentation_rect": [
            4,
            92,
            350,
            20
          ]
        }
      },
      {
        "box": {
          "id": "obj-progress",
          "maxclass": "slider",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            360,
            460,
            140,
            20
          ],
          "outlettype": [
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            4,
            114,
            350,
            10
          ],
          "orientation": 1,
          "floatoutput": 1,
          "size": 1.0
        }
      },
      {
        "box": {
          "id": "obj-errorpre",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            230,
            400,
            75,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "prepend set"
        }
      },
      {
        "box": {
          "id": "obj-error",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            230,
            490,
            330,
            22
          ],
          "outlettype": [
            ""
          ],
          "text": "",
          "presentation": 1,
          "presentation_rect": [
            4,
            126,
            350,
            20
          ],
          "bgcolor": [
            0.35,
            0.1,
            0.1,
            1.0
          ]
        }
      },
      {
        "box": {
          "id": "obj-placed",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            360,
            400,
            130,
            22
          ],
          "text": "print stemforge-placed"
        }
      },
      {
        "box": {
          "id": "obj-comment",
          "maxclass": "comment",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            520,
            520,
            20
          ],
          "text": "Stemforge: generate stems into the Live set over the loop region. Token and port are read from the daemon's data folder."
        }
      }
    ],
    "lines": [
      {
        "patchline": {
          "source": [
            "obj-btn-generate",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-btn-regenerate",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-btn-inpaint",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-btn-keep",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-btn-release",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-btn-cancel",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-device",
            0
          ],
          "destination": [
            "obj-js",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-prompt",
            0
          ],
          "destination": [
            "obj-promptpre",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-promptpre",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-steps",
            0
          ],
          "destination": [
            "obj-stepspre",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-stepspre",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-node",
            0
          ],
          "destination": [
            "obj-route",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-route",
            0
          ],
          "destination": [
            "obj-callpre",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-callpre",
            0
          ],
          "destination": [
            "obj-defer",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-defer",
            0
          ],
          "destination": [
            "obj-js",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-js",
            0
          ],
          "destination": [
            "obj-node",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-route",
            1
          ],
          "destination": [
            "obj-statuspre",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-statuspre",
            0
          ],
          "destination": [
            "obj-status",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-route",
            2
          ],
          "destination": [
            "obj-progress",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-route",
            3
          ],
          "destination": [
            "obj-errorpre",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-errorpre",
            0
          ],
          "destination": [
            "obj-error",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-route",
            5
          ],
          "destination": [
            "obj-placed",
            0
          ]
        }
      }
    ],
    "dependency_cache": [
      {
        "name": "live_api.js",
        "bootpath": ".",
        "type": "TEXT",
        "implicit": 1
      },
      {
        "name": "stemforge_node.js",
        "bootpath": ".",
        "type": "TEXT",
        "implicit": 1
      }
    ],
    "autosave": 0
  }
}
