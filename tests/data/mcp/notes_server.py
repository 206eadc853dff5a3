"""A small MCP server written with the official SDK, for the tests: notes kept as files in a state directory.

Run: ``python notes_server.py STATE_DIR`` (stdio) or ``python notes_server.py STATE_DIR --http PORT``.
It writes one file per note, refuses a title used twice, can hang (``wait``) and crash (``crash``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

root = Path(sys.argv[1])
server = MCPServer("notes", log_level="WARNING")


@server.tool()
def add_note(title: str, text: str) -> dict[str, str]:
    """Save a note under a title; a title can be used once."""
    path = root / f"{title}.txt"
    if path.exists():
        raise ToolError(f"a note titled {title!r} exists already")
    path.write_text(text, encoding="utf-8")
    return {"saved": title}


@server.tool()
def list_notes() -> list[str]:
    """The titles of all notes, sorted."""
    return sorted(path.stem for path in root.glob("*.txt"))


@server.tool()
def read_note(title: str) -> str:
    """A note's text."""
    return (root / f"{title}.txt").read_text(encoding="utf-8")


@server.tool()
def wait(seconds: float) -> str:
    """Take this long to answer."""
    time.sleep(seconds)
    return "done"


@server.tool()
def crash() -> str:
    """End the server process at once."""
    os._exit(3)


if __name__ == "__main__":
    if "--http" in sys.argv:
        server.run("streamable-http", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
