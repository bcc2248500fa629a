# %% [markdown]
# # Chapter 7 · solutions to "Try this"
#
# Run these after the chapter, in the same kernel (the tests do): they use `corpus`, `cache`, `backend`,
# `chunks`, `folder` and `workdir`.

# %% [markdown]
# **Change another document.** Add a paragraph to the end of `02-chunking.md` and re-run the update cell.

# %%
edited = corpus / "02-chunking.md"
edited.write_text(edited.read_text() + "\nA chunk that ends mid-sentence is hard to quote: prefer cuts at "
                  "paragraph boundaries when the size allows.\n")
rechunked = ragkit.chunk_documents(ragkit.load_documents([corpus]), "heading")
second_update = cache.embed(backend, [ragkit.index.embedding_text(c) for c in rechunked], progress=False)
changed = sorted({c.id for c in rechunked} - {c.id for c in chunks} |
                 {c.id for c, old in zip(rechunked, chunks) if c.text != old.text})
print(f"{len(rechunked)} chunks: {second_update.embedded} embedded now, {second_update.cached} from the cache;"
      f" changed: {changed}")

# %% [markdown]
# One. The new paragraph joins the last section, "Choosing a size", which stays under the chunk limit, so
# that one chunk's text changed and every other chunk (the other 27, including the section we added in the
# chapter) came back from the cache. Had the section grown past the limit it would have split, and the
# pieces after the cut would be new texts too.

# %%
assert len(rechunked) == len(chunks) == 28 and changed == ["02-chunking.md#2"], changed
assert next(c for c in rechunked if c.id == "02-chunking.md#2").section.endswith("Choosing a size")
assert second_update.embedded == 1 and second_update.cached == 27

# %% [markdown]
# **Serve from a terminal.** In one terminal:
#
# ```
# ragkit serve --port 8000
# ```
#
# It prints which models it serves and the `RAGKIT_BASE_URL` to set, then logs one line per request
# (Ctrl-C stops it). In a second terminal:
#
# ```
# RAGKIT_BASE_URL=http://127.0.0.1:8000/v1 ragkit ask "What does BM25 score?"
# ```
#
# The first time, there is no index yet: `ragkit ask` says so on stderr, builds one from the demo corpus
# (its embeddings come from the server), then prints the checked answer, its `Sources:` with `[n]` numbers,
# how the answer was checked, and a last line of timings ending in `(rerank: local/default)`: the client
# asked the server for "your reranker". Here the same runs in one process: the server in a thread, the CLI
# as a child process started in a fresh folder of this chapter's temporary one.

# %%
import os
import subprocess
import sys

from ragkit.backends.local import LocalBackend
from ragkit.backends.server import make_server

cli_server = make_server(LocalBackend(), port=0, quiet=True).start()
env = {k: v for k, v in os.environ.items() if k not in ("OPENROUTER_API_KEY", "RAGKIT_INDEX")}  # our server only
env["RAGKIT_BASE_URL"] = cli_server.base_url
terminal = workdir / "terminal"  # the second terminal's current folder: its index goes to .ragkit/index there
terminal.mkdir()
try:
    asked = subprocess.run([sys.executable, "-m", "ragkit", "ask", "What does BM25 score?"], env=env, cwd=terminal,
                           capture_output=True, text=True, timeout=300)
finally:
    cli_server.shutdown()
print(asked.stdout)
print("stderr, last line:", asked.stderr.strip().splitlines()[-1])

# %% [markdown]
# The answer cites the lexical-search part of `04-vector-search.md`, the article that explains BM25, and the
# timings name the alias `local/default` as the reranker. The index the CLI built (27 chunks, from the
# unedited packaged demo corpus) is in `.ragkit/index` under the folder it ran in; a second `ragkit ask`
# there would reuse it.

# %%
assert asked.returncode == 0, asked.stderr
assert "no index at" in asked.stderr and "indexed 8 documents as 27 chunks" in asked.stderr
assert "Sources:" in asked.stdout and "04-vector-search.md" in asked.stdout
assert asked.stdout.rstrip().endswith("(rerank: local/default)")
assert VectorIndex.load(terminal / ".ragkit" / "index").model == backend.embedding_model

# %% [markdown]
# **Break it on purpose.** Two copies of the saved index: one without `chunks.jsonl`, one with the count in
# `index.json` changed from 27 to 28.

# %%
import json

broken = {}
no_chunks = shutil.copytree(folder, workdir / "broken-no-chunks")
(no_chunks / "chunks.jsonl").unlink()
edited_count = shutil.copytree(folder, workdir / "broken-count")
meta = json.loads((edited_count / "index.json").read_text())
(edited_count / "index.json").write_text(json.dumps({**meta, "count": meta["count"] + 1}))
for name, path in {"chunks.jsonl deleted": no_chunks, "count edited": edited_count}.items():
    try:
        VectorIndex.load(path)
    except ragkit.IndexFileError as err:
        broken[name] = err
        print(f"{name}: {type(err).__name__}: {err}", end="\n\n")

# %% [markdown]
# Both loads refuse with an `IndexFileError` (so `except ragkit.RagkitError` catches them): the first names
# the missing file, the second notices that `index.json` no longer matches its own checksum. Neither
# returns an index with the wrong number of chunks or vectors; each says how to rebuild.

# %%
assert set(broken) == {"chunks.jsonl deleted", "count edited"}
assert "chunks.jsonl is missing" in str(broken["chunks.jsonl deleted"])
assert "does not match its own checksum" in str(broken["count edited"])
assert VectorIndex.load(folder).model == index.model  # the original folder is untouched
