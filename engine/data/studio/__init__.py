"""The synthetic studio: procedural multitrack arrangements rendered to aligned stems.

``theory`` (keys, chords, GM programs) -> ``styles`` (genres) -> ``arrange`` (notes per stem) ->
``midi`` (mido files) -> ``render`` (FluidSynth or the numpy ``synth``) + ``captions``.
"""
