"""The README's commands, run on the bundled example as a user would type them after ``make demo``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import soundfile as sf
from cli_helpers import run

ROOT = Path(__file__).resolve().parents[1]

QUICK_REVERSE_STEPS = "2"
"""``reverse`` runs its fit with this many steps here (the README's 60 take 90 s): the command line,
its paths and the render of its output are what this test checks, not the fit's quality."""

EXAMPLE_SECONDS = 6.0
"""The bundled example's stems are cut to their first seconds here (same files, same names and
formats), so the whole README runs in seconds."""


def readme_commands(text: str) -> list[str]:
    """Every ``automix …`` line of the README's ``sh`` blocks (continuations joined, comments cut)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("automix "):
                commands.append(line)
    return commands


def runs_on_the_example(command: str) -> bool:
    """A command that names only the bundled example and ``demo/`` (not a placeholder such as
    ``STEMS_DIR`` or ``song.wav``, nor the training data of ``data/``)."""
    words = shlex.split(command)[1:]
    files = [w for w in words if "/" in w or re.search(r"\.(wav|flac|mp3|ogg|json|png|yaml)$", w)]
    return all(w.startswith(("examples/", "demo/")) for w in files) and "[" not in command


def _make_demo() -> str:
    """The ``make demo`` command from the Makefile (the README's first set-up command)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    line = re.search(r"^demo:.*\n\t(.+)$", makefile, flags=re.MULTILINE)
    assert line is not None, "no demo target in the Makefile"
    return line.group(1).replace("$(VENV)/bin/", "")


def _short_example(folder: Path) -> None:
    """The bundled example's stems, each cut to :data:`EXAMPLE_SECONDS`, written to ``folder``."""
    folder.mkdir(parents=True)
    for stem in sorted((ROOT / "examples" / "stems").iterdir()):
        if stem.name.startswith("."):
            continue
        info = sf.info(str(stem))
        audio, rate = sf.read(str(stem), frames=int(EXAMPLE_SECONDS * info.samplerate), always_2d=True)
        sf.write(str(folder / stem.name), audio, rate, subtype=info.subtype)


@pytest.fixture(scope="module")
def commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [c for c in readme_commands(text) if runs_on_the_example(c)]


def test_the_readme_names_example_commands(commands: list[str]) -> None:
    verbs = {shlex.split(c)[1] for c in commands}
    assert {"mix", "show", "reverse", "render", "eval", "models"} <= verbs, commands


def test_readme_commands_run_on_the_example(commands: list[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _short_example(tmp_path / "examples" / "stems")
    monkeypatch.chdir(tmp_path)
    for command in [_make_demo(), *commands]:
        words = shlex.split(command)[1:]
        if words[0] == "reverse" and "--steps" not in words:
            words += ["--steps", QUICK_REVERSE_STEPS]
        result = run(*words)
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "demo" / "console.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "rerendered.wav").is_file()
