"""The CLI remembers the session `stemforge client session create` made, per data directory."""

from clients.python.connection import read_current_session, write_current_session


def test_current_session_round_trip_per_data_dir(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert read_current_session(a) is None
    write_current_session("s-1234abcd", a)
    assert read_current_session(a) == "s-1234abcd"
    assert read_current_session(b) is None
    write_current_session("s-ffff0000", a)
    assert read_current_session(a) == "s-ffff0000"
    assert (a / "client-session").read_text() == "s-ffff0000\n"
