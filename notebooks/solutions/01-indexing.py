# %% [markdown]
# # Chapter 1 · solutions to "Try this"
#
# Run these after the chapter, in the same kernel (the tests do): they use `docs`, `chunks`, `texts`,
# `cache`, `backend`, `first`, `measured` and `workdir`.

# %% [markdown]
# **Chunk size.** With `max_tokens=128` more sections are too long and are cut, so there are more, smaller
# chunks. Which of their texts does the chapter's cache already hold? Asking the cache (`get`) embeds nothing.

# %%
chunks_128 = ragkit.chunk_documents(docs, "heading", max_tokens=128)
texts_128 = [embedding_text(c) for c in chunks_128]
in_cache = cache.get(backend.embedding_model, sorted(set(texts_128)), origin=backend.origin)
n_cached, n_new = sum(v is not None for v in in_cache), sum(v is None for v in in_cache)
print(f"{len(chunks_128)} chunks ({len(set(texts_128))} different texts): {n_cached} already in the cache, "
      f"{n_new} to embed")

# %% [markdown]
# Only 162 texts come out identical at both limits; every other piece starts or ends somewhere new, and the
# cache, keyed by the exact text, sees a new text. Re-running the whole chapter would embed those 1,162 (the
# cell below estimates how long), so we embed **a slice**, the first 40 chunks, and let the counters show
# the same split.

# %%
start = time.perf_counter()
part = cache.embed(backend, texts_128[:40], progress=False)
part_seconds = time.perf_counter() - start
print(f"first 40 chunks: embedded {part.embedded}, from the cache {part.cached}, {part_seconds:.1f} s "
      f"(at that pace all {n_new} new texts would take about {n_new * part_seconds / part.embedded:.0f} s)")

# %%
assert len(chunks_128) == 1332 and (n_cached, n_new) == (162, 1162)
assert (part.embedded, part.cached) == (36, 4) and part.embedded == len(set(texts_128[:40]) - set(texts))
assert max(c.n_tokens for c in chunks_128) <= 128 < max(c.n_tokens for c in chunks)

# %% [markdown]
# **Chunking method.** The same histogram for paragraphs and for fixed windows of 200 word pieces with 20
# of overlap.

# %%
by_method = {"heading, max 200": chunks,
             "paragraph, max 200": ragkit.chunk_documents(docs, "paragraph", max_tokens=200),
             "tokens 200/20": ragkit.chunk_documents(docs, "tokens", size=200, overlap=20)}
fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharex=True)
for ax, (name, cut) in zip(axes, by_method.items()):
    ax.hist([c.n_tokens for c in cut], bins=40)
    ax.axvline(200, color="orange", linestyle="--")
    ax.set(title=f"{name}: {len(cut)} chunks", xlabel="word pieces per chunk")
axes[0].set_ylabel("chunks")
fig.tight_layout()
ends = lambda cut: sum(c.text.rstrip()[-1] in ".:?!)" for c in cut) / len(cut)  # noqa: E731
methods = pd.DataFrame({name: {"chunks": len(cut), "median word pieces": pd.Series([c.n_tokens for c in cut]).median(),
                               "exactly 200": sum(c.n_tokens == 200 for c in cut),
                               "ends a sentence": round(ends(cut), 2)} for name, cut in by_method.items()}).T
methods = methods.astype({"chunks": int, "exactly 200": int})
methods

# %% [markdown]
# Paragraphs are many and small (median 31 word pieces): each follows the text's own breaks, but often
# holds one sentence, too little for a question to match. Windows are all the same size, 200 word pieces,
# except the last of each topic, and they ignore the text: only about one in seven ends at the end of a
# sentence, against more than four in five heading chunks. The first window of `assert` stops in the middle
# of a word, and the next repeats its last 20 word pieces:

# %%
window_0, window_1 = by_method["tokens 200/20"][:2]
print(repr(window_0.text[-60:]), "|", repr(window_1.text[:60]))

# %%
assert methods.loc["paragraph, max 200", ["chunks", "median word pieces"]].tolist() == [2722, 31]
assert methods.loc["tokens 200/20", "chunks"] == 743 and methods.loc["tokens 200/20", "exactly 200"] > 0.85 * 743
assert methods.loc["tokens 200/20", "ends a sentence"] < 0.2 < 0.8 < methods.loc["heading, max 200", "ends a sentence"]
assert window_0.doc_id == window_1.doc_id == "assert" and window_1.start < window_0.end  # they overlap
assert window_0.text[window_1.start - window_0.start:] == window_1.text[:window_0.end - window_1.start]

# %% [markdown]
# **Batch size.** Embedding all 849 texts again with `batch_size=16` into a fresh file takes 2 to 4 minutes
# here, so we rely on what the chapter measured and a small run. The count of requests is
# `math.ceil(texts / batch_size)`: 54 for the whole corpus at 16, 14 at 64. The "Check yourself" cell already
# ran batches of 16 on the first 100 texts (7 requests, the same vectors as the batches of 64). Here 16
# texts go through three fresh caches, one batch size each:

# %%
small_runs = {}
for size in (1, 4, 16):
    start = time.perf_counter()
    run = EmbeddingCache(workdir / f"batch{size}.sqlite").embed(backend, texts[:16], batch_size=size, progress=False)
    small_runs[size] = {"requests": run.usage.requests, "seconds": round(time.perf_counter() - start, 2),
                        "largest difference from batches of 64": float(abs(run.vectors - first.vectors[:16]).max())}
batch_table = pd.DataFrame(small_runs).T.rename_axis("batch size")
print("whole corpus:", {size: math.ceil(len(set(texts)) / size) for size in (16, 64)}, "requests")
batch_table

# %% [markdown]
# One request per batch, and the vectors do not depend on how the texts were grouped (any difference is
# rounding, under 1e-4). The seconds column shows that locally the batch size changes little: the model
# does about the same work per text however the texts are grouped (on 16 texts the differences are mostly
# noise; do not read an order into them). With a hosted API each request is also a round trip over the
# network, and fewer, larger requests are what saves time.

# %%
assert batch_table["requests"].tolist() == [16, 4, 1] and measured.usage.requests == math.ceil(100 / 16)
assert (batch_table["largest difference from batches of 64"] < 1e-4).all()
assert math.ceil(len(set(texts)) / 16) == 54 and first.usage.requests == math.ceil(len(set(texts)) / 64) == 14
