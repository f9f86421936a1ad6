"""The bad-input contract of the `python -m` entry points: exit 2 and one line on stderr."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def exits_2_with_one_line(
    main: Callable[[list[str]], object], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """What `main(argv)` wrote on stderr, once it exited 2 with exactly one line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err
