"""RAG techniques that tutorials recommend, each a few lines on top of ragkit, measured in chapter 8.

- `rewriting`: multi-query (paraphrases fused by reciprocal rank) and HyDE (search with a hypothetical answer)
- `windows`: small-to-big (search sentence windows, hand their parent passage on)
- `headers`: what is embedded for a chunk: with its title and section path (ragkit's default) or alone
- `diversity`: maximal marginal relevance, and near-duplicate passages dropped (the best-ranked copy kept)
- `context`: contextual retrieval (an LLM writes each chunk a sentence placing it in its document)

`ragkit.eval.techniques` measures them on the labelled sets; `ragkit eval --configs` runs each by name.
"""
