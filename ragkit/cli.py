"""The `ragkit` command: index documents, ask questions, serve the local models over HTTP.

    ragkit index [PATH ...]        chunk and embed files or folders (default: the demo corpus)
    ragkit ask "question"          answer from the index, with cited sources and stage timings
    ragkit eval --dataset DIR      compare retrieval configurations on a labelled BEIR dataset
    ragkit serve [--port 8000]     serve the local models over the OpenRouter/OpenAI wire protocol
    ragkit warmup                  load every model once (before a workshop)
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
from .backends.server import serve
from .chunking import DEFAULT_MAX_TOKENS, chunk_documents
from .documents import load_documents
from .errors import DatasetError, DownloadFailed, IndexFileError, RagkitError
from .eval.beir import BEIR_MD5
from .eval.benchmark import benchmark_beir, parse_configs
from .index_files import folder_state, writing
from .pipeline import ask
from .stores import MemoryStore, describe, open_store, redact, sync

DEMO_CORPUS = Path(__file__).resolve().parent.parent / "data" / "demo"
STORE_HELP = ("where the index lives: a folder, postgresql://..., milvus://file.db or http://milvus-host:19530 "
              "(default: $RAGKIT_STORE, else --index)")


def default_index_dir() -> Path:
    """Return `$RAGKIT_INDEX`, or `.ragkit/index` under the current folder."""
    return config.settings().index


def _demo_paths() -> list[Path]:
    if not DEMO_CORPUS.is_dir():
        sys.exit(f"ragkit: the demo corpus is not at {DEMO_CORPUS} (installed without the repo?); "
                 f"give the files to index: ragkit index PATH ...")
    return [DEMO_CORPUS]


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


def cmd_ask(args) -> int:
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
                 threshold=args.threshold, use_rerank=not args.no_rerank)
    answer = result.answer
    print(answer.text)
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            where = c.hit.chunk.source or c.hit.chunk.doc_id
            print(f"  [{c.number}] {c.hit.chunk.label} ({where}, chunk {c.hit.chunk.position})")
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
    where = Path(args.dataset)
    if not where.exists() and args.dataset not in BEIR_MD5:
        print(f"ragkit: eval: no dataset folder at {where} (working directory: {Path.cwd()}); pass a BEIR "
              f"folder (corpus.jsonl, queries.jsonl, qrels/) or a BEIR name such as 'scifact'", file=sys.stderr)
        return 1
    try:
        report = benchmark_beir(args.dataset, split=args.split, configs=parse_configs(args.configs),
                                rerank_top=args.k)
        paths = report.write_runs(args.run_dir) if args.run_dir else []
    except (DatasetError, DownloadFailed, FileNotFoundError, ValueError) as exc:
        print(f"ragkit: eval: {exc}", file=sys.stderr)
        return 1
    if paths:
        print(f"ragkit: wrote {len(paths)} run files (top 100 per query) to {args.run_dir}", file=sys.stderr)
    print(json.dumps(report.to_json(), indent=2) if args.json else report)
    return 0


def cmd_serve(args) -> int:
    serve(LocalBackend.from_env(), host=args.host, port=args.port)
    return 0


def cmd_warmup(args) -> int:
    b = LocalBackend.from_env()
    b.embed(["warm up"])
    b.rerank("warm up", ["warm up"])
    b.chat([{"role": "user", "content": "Say OK."}], max_tokens=2)
    print(f"ragkit: models loaded: {b.embedding_model}, {b.rerank_model}, {b.chat_model}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ragkit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    i = sub.add_parser("index", help="chunk and embed documents into an index")
    i.add_argument("paths", nargs="*", help="text/markdown files or folders (default: the demo corpus)")
    i.add_argument("--index", type=Path, default=default_index_dir(), help="where to save the index")
    i.add_argument("--store", default=config.settings().store, help=STORE_HELP)
    i.add_argument("--method", default="heading", choices=["paragraph", "tokens", "sentence", "heading"])
    i.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="chunk size limit in word pieces")
    i.set_defaults(run=cmd_index)

    a = sub.add_parser("ask", help="answer a question from the index")
    a.add_argument("question")
    a.add_argument("--index", type=Path, default=default_index_dir())
    a.add_argument("--store", default=config.settings().store, help=STORE_HELP)
    a.add_argument("-k", type=int, default=20, help="candidates retrieved (default 20)")
    a.add_argument("--keep", type=int, default=5, help="sources given to the model (default 5)")
    a.add_argument("--threshold", type=float, default=None, help="minimum rerank score")
    a.add_argument("--no-rerank", action="store_true", help="use embedding order only")
    a.set_defaults(run=cmd_ask)

    e = sub.add_parser("eval", help="compare retrieval configurations on a BEIR dataset")
    e.add_argument("--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or name")
    e.add_argument("--split", default="test", help="which qrels/{split}.tsv to score (default test)")
    e.add_argument("--configs", default=None, help="comma-separated, from dense,bm25,hybrid,dense+rerank,"
                   "bm25+rerank,hybrid+rerank,hybrid+rerank@30; FIRST+rerank@N reranks FIRST's top N "
                   "(default: all)")
    e.add_argument("--run-dir", type=Path, default=None, help="write one TREC run file per configuration here")
    e.add_argument("--json", action="store_true", help="print the table as a JSON list")
    e.add_argument("--k", type=int, default=20, help="candidates reranked per query (default 20, as ask)")
    e.set_defaults(run=cmd_eval)

    s = sub.add_parser("serve", help="serve the local models over HTTP (OpenAI/OpenRouter protocol)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(run=cmd_serve)

    w = sub.add_parser("warmup", help="load every local model once")
    w.set_defaults(run=cmd_warmup)
    return p


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one line on stderr, as the rest of ragkit's messages are."""
    print(f"ragkit: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.showwarning = _one_line
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("ragkit: interrupted (work already embedded stays cached)", file=sys.stderr)
        return 130
    except (RagkitError, ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"ragkit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
