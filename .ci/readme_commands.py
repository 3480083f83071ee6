"""Print the README's Quick start commands, one per line, for .ci/run to execute as written.

    python .ci/readme_commands.py README.md

The commands are the lines of the first fenced ``bash`` block under the ``## Quick start`` heading; a trailing
``# comment`` is dropped, backslash continuations are joined, blank and comment-only lines are skipped. Exit
status 2 (with the reason) when the heading or the block is missing.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADING = "## Quick start"
FENCE = re.compile(r"```bash\n(.*?)```", re.S)


def quickstart_commands(readme: str) -> list[str]:
    """The commands of the Quick start block (see the module docstring); ValueError if there is none."""
    if HEADING not in readme:
        raise ValueError(f"no '{HEADING}' heading")
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    block = FENCE.search(section)
    if block is None:
        raise ValueError(f"no ```bash block under '{HEADING}'")
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    if not commands:
        raise ValueError(f"the ```bash block under '{HEADING}' holds no command")
    return commands


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python .ci/readme_commands.py README.md", file=sys.stderr)
        return 2
    try:
        commands = quickstart_commands(Path(argv[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        print(f"readme_commands.py: {argv[0]}: {err}", file=sys.stderr)
        return 2
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
