"""get-model's progress line on its markup-free console: the file name, never a literal style
tag such as "[progress.description]"."""

from __future__ import annotations

import io

from rich.console import Console

from training.get_model import _progress


def test_the_progress_line_shows_the_file_name_and_no_style_tag() -> None:
    out = io.StringIO()
    # As get-model makes it (markup off), writing to a terminal-like buffer.
    console = Console(file=out, highlight=False, markup=False, soft_wrap=True,
                      force_terminal=True, width=120)
    with _progress(console) as progress:
        task = progress.add_task("best-model[1].h5", total=1000)
        progress.update(task, completed=1000)
    text = out.getvalue()
    assert "best-model[1].h5" in text
    assert "[progress." not in text
