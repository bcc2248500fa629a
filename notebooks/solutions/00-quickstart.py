# %% [markdown]
# # Chapter 0 · solutions to "Try this"
#
# Run these after the chapter, in the same kernel (the tests do): they use `index`, `backend`, `result`.

# %% [markdown]
# **Ask your own question.** Any question the demo articles answer keeps at least one source; the answer
# cites only what was kept.

# %%
mine = ragkit.ask("Why do we split documents into chunks?", index, backend)
print([(h.chunk.label, round(h.score, 3)) for h in mine.kept])
show_answer(mine.answer)
assert mine.kept and {c.hit.chunk.doc_id for c in mine.answer.citations} <= {h.chunk.doc_id for h in mine.kept}

# %% [markdown]
# **Keep fewer sources.** With `k_keep=1` the model sees one source, so `[1]` is the only citation it can
# make (ragkit removes any other).

# %%
one = ragkit.ask(question, index, backend, k_keep=1)
print(one.answer.text)
assert len(one.kept) == 1 and {c.number for c in one.answer.citations} <= {1}

# %% [markdown]
# **Skip the reranker.** Without it the top chunks by cosine go to the model, in embedding order, and the
# threshold (which is on the reranker's scale) is not applied. Compare which chunks each run kept.

# %%
plain = ragkit.ask(question, index, backend, use_rerank=False, answer=False)
compared = pd.DataFrame({"reranked": [h.chunk.label for h in result.kept] + [""] * (5 - len(result.kept)),
                         "embedding only": [h.chunk.label for h in plain.kept]})
compared

# %% [markdown]
# Without the reranker five chunks go to the model, related but mostly not about what a reranker *does*;
# with it, only the one section that answers the question clears the bar.

# %%
assert len(plain.kept) == 5 and len(result.kept) < len(plain.kept)

# %% [markdown]
# **Lower the bar.** A lower threshold keeps more candidates; below the reranker's scale for "relevant" they
# are mostly noise the model has to ignore.

# %%
low = ragkit.ask(question, index, backend, threshold=0.05, answer=False)
print([(h.chunk.label, round(h.score, 3)) for h in low.kept])
assert len(low.kept) > len(result.kept) and all(h.score >= 0.05 for h in low.kept)
