"""Progress bars: redrawn in place in a terminal, one final line in a log, the finished bar in a saved
notebook. Each case runs where the bar really goes: a pipe, a pseudo-terminal, a Jupyter kernel."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

BAR = """
import time
from ragkit.progress import progress_bar
with progress_bar(True, 40, "embedding") as advance:
    for _ in range(40):
        advance(1)
        time.sleep(0.01)
"""


def test_in_a_log_a_bar_is_one_final_line():
    done = subprocess.run([sys.executable, "-c", BAR], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("embedding: 100%") and "40/40" in lines[0], lines


def test_in_a_terminal_a_bar_is_redrawn_in_place_at_most_once_per_update():
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    try:
        proc = subprocess.Popen([sys.executable, "-c", BAR], stdin=secondary, stdout=secondary,
                                stderr=secondary, close_fds=True)
        os.close(secondary)
        screen = b""
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            screen += data
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(main)
    frames = [f for f in screen.decode().replace("\n", "\r").split("\r") if f.strip()]
    assert 2 <= len(frames) <= 41, frames  # drawn as it goes, never more often than it moves
    assert frames[-1].startswith("embedding: 100%") and "40/40" in frames[-1]
    assert all(f.startswith("embedding:") for f in frames)


def test_a_saved_notebook_shows_the_finished_bar(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BAR)])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    shown = [o for o in outputs if o.output_type in ("display_data", "stream", "execute_result")]
    assert len(shown) == 1, outputs
    text = shown[0].get("data", {}).get("text/plain") or shown[0].get("text", "")
    assert text.startswith("embedding: 100%") and "40/40" in text, text
    assert "0%|" not in text.replace("100%|", "")
