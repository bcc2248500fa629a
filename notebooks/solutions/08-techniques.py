# %% [markdown]
# # Chapter 8 · solutions to "Try this"
#
# Run these after the chapter, in the same kernel (the tests do): they use `chunks`, `by_id`, `index`,
# `backend`, `q`, `change`, `reference_set`, `loops`, `top`, `store` and the imports of each section.

# %% [markdown]
# **Where reranking hurt.** The five python-reference questions whose nDCG@10 fell most, with their text.

# %%
hurt = change.nsmallest(5)
pd.DataFrame({"change": hurt.round(3), "question": [reference_set.queries[qid] for qid in hurt.index]})

# %% [markdown]
# Each lost a relevant topic from the top: the reranker preferred a chunk that shares more of the
# question's words. Compare `reference["no-rerank"].scores.loc[hurt.index]` with the base's.

# %%
assert (hurt < 0).all() and len(hurt) == 5

# %% [markdown]
# **Chunks that are the same text without headers.** Group the chunks by their text alone.

# %%
from collections import defaultdict

groups = defaultdict(list)
for chunk in chunks:
    groups[chunk_alone(chunk)].append(chunk.id)
same_text = [ids for ids in groups.values() if len(ids) > 1]
print(f"{len(same_text)} groups of chunks share their text, {sum(map(len, same_text))} chunks in all")
same_text[:5]

# %%
assert {"for#1", "compound#7"} in [set(ids) for ids in same_text]

# %% [markdown]
# **Windows of one sentence.** More children, and each parent ranked by its single best sentence.

# %%
ones, of_ones = sentence_windows(loops, size=1)
parent_of_one = {child.id: loops[row] for child, row in zip(ones, of_ones)}
by_sentence = to_parents(ragkit.build_index(ones, backend).search(q, k=len(ones)), parent_of_one)
print(f"{len(ones)} windows of one sentence (against {len(children)} of three)")
hits_frame(by_sentence)[["rank", "score", "chunk"]].head(5)

# %%
assert len(ones) > len(children) and len(by_sentence) == len(loops)

# %% [markdown]
# **MMR's lambda.** Lower lambda weighs "unlike what is already picked" more than relevance.

# %%
pd.DataFrame({f"lambda {lam}": [h.chunk.id for h in mmr_hits(top, hit_vectors(index, top), k=5, lambda_=lam)]
              for lam in (0.3, 0.7, 0.9)})

# %% [markdown]
# **Rewriting another question.** The local model's wordings and its "answer", for chapter 2's `pass`.

# %%
other = "What does the pass statement do?"
print(paraphrases(other, backend).texts)
print(hypothetical_answer(other, backend).texts[0][:300])

# %% [markdown]
# **A filter on the section.** Only chunks under that section path come back.

# %%
section = by_id["for#1"].section
in_section = store.search(q, k=5, where={"section": section})
print(repr(section), [h.chunk.id for h in in_section])

# %%
assert in_section and all(h.chunk.section == section for h in in_section)
