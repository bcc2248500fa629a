# %% [markdown]
# # Chapter 5 · solutions to "Try this"
#
# Run these after the chapter, in the same kernel (the tests do): they use `docs`, `run`, `rows`, `runs`,
# `table`, `SIZES` and `budgets`.

# %% [markdown]
# **Window size.** Two more windows, 96 and 384 word pieces (10% overlap, as in the sweep).

# %%
MORE = sorted(SIZES + [96, 384])
for size in (96, 384):
    run(f"tokens {size}/{size // 10}", "tokens", size=size, overlap=size // 10)
wider = table(f"tokens {s}/{s // 10}" for s in MORE)
wider[["chunks", "mean size", "cut at 256", "recall@5", "ndcg@10", "top-5 tokens"]]

# %% [markdown]
# The chunk count falls as the window grows (each window steps `size - overlap` pieces on; short topics
# still make one chunk each, so it falls more slowly than 1/size). The prompt cost of the top 5 grows
# with the window. Windows of 384 are longer than the 256 pieces the model reads, so `cut at 256` counts
# them: their ends are never embedded.

# %%
assert list(wider["chunks"]) == sorted(wider["chunks"], reverse=True)
assert list(wider["top-5 tokens"]) == sorted(wider["top-5 tokens"])
assert rows["tokens 384/38"]["cut at 256"] > 0 and rows["tokens 96/9"]["cut at 256"] == 0

# %% [markdown]
# **Prompt budget.** 2048 pieces of retrieved text per question: the large windows catch up, but not all
# the way, because what their embedding never read (past 256 pieces) retrieval could not match.

# %%
roomy = pd.DataFrame({size: {budget: (runs[f"tokens {size}/{size // 10}"]["tokens to answer"] <= budget).mean()
                             for budget in (256, 512, 1024, 2048)} for size in SIZES})
roomy.rename_axis(index="prompt budget", columns="window size").round(3)

# %%
gap_1024 = roomy.loc[1024, 64] - roomy.loc[1024, 512]
gap_2048 = roomy.loc[2048, 64] - roomy.loc[2048, 512]
print(f"64 vs 512 windows: {gap_1024:+.3f} at 1024 pieces, {gap_2048:+.3f} at 2048")
assert roomy.loc[2048, 512] >= roomy.loc[1024, 512] and gap_2048 <= gap_1024  # catching up as the budget grows

# %% [markdown]
# **A maximum size for the heading chunker.** `max_tokens=100` splits long sections: more, shorter
# chunks, and each keeps its section path (a split section's parts share it). Chunking alone shows it; no
# need to embed to see the shape.

# %%
default_heading = ragkit.chunk_documents(docs, "heading")
short_heading = ragkit.chunk_documents(docs, "heading", max_tokens=100)
print(f"heading: {len(default_heading)} chunks; with max_tokens=100: {len(short_heading)} chunks, "
      f"largest {max(c.n_tokens for c in short_heading)} pieces")
print([c.label for c in short_heading[:4]])
assert len(short_heading) > len(default_heading) and max(c.n_tokens for c in short_heading) <= 100
assert all(c.section for c in short_heading)

# %% [markdown]
# **The whole Reference.** `STATEMENTS = {d.id for d in python_reference()}` makes every chapter of the
# Language Reference a candidate: 79 topics instead of 26, and a few minutes of embedding the first time.
# It is left to run on your own machine; what to look for: every configuration scores lower (more topics
# to confuse with the right one), and the gap between windows of 64 and 512 grows, because long windows
# are cut in more places when there are more long topics.
