"""Rerankers: the cross-encoder path (a tiny generated model, a fake hub on loopback) and the offline
reranker (the real packaged MiniLM)."""
from __future__ import annotations

import doctest
import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from faultserver import FaultServer, Reply
from conftest import write_files
from ragkit.lexical import tokenize
from ragkit.config import DEFAULT_CROSS_ENCODER
from ragkit.rerankers import CrossEncoder, LocalReranker, find_cross_encoder, local_reranker
from ragkit.rerankers.offline import FEATURES, PAIR_SCORES, bm25_within, maxsim, overlap, read, terms, windows

REPO_NAME = "tiny-org/tiny-cross-encoder"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "do", "cats", "eat", "fish", "and", "meat",
         "stock", "prices", "fell", "the", "a", "##s", "dog", "sleep"]
HIDDEN = 8


# -- a tiny cross-encoder with the real one's signature -------------------------------------------

def make_tokenizer_json() -> str:
    """A BERT-style WordPiece tokenizer (lowercase, [CLS] a [SEP] b [SEP], type ids 0 then 1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", VOCAB.index("[CLS]")), ("[SEP]", VOCAB.index("[SEP]"))])
    return tok.to_str()


def make_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"word": rng.normal(size=(len(VOCAB), HIDDEN)).astype(np.float32),
            "types": rng.normal(size=(2, HIDDEN)).astype(np.float32),
            "w": rng.normal(size=(HIDDEN, 1)).astype(np.float32),
            "b": np.array([0.1], dtype=np.float32)}


def make_onnx(weights: dict[str, np.ndarray]) -> bytes:
    """logits = tanh(masked mean of (word + type embeddings)) @ w + b: batch x 1, like a cross-encoder."""
    from onnx import TensorProto, helper, numpy_helper

    def ids(name):
        return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])

    nodes = [
        helper.make_node("Gather", ["word", "input_ids"], ["we"]),
        helper.make_node("Gather", ["types", "token_type_ids"], ["te"]),
        helper.make_node("Add", ["we", "te"], ["h"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "axis1"], ["s"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["n"], keepdims=0),
        helper.make_node("Div", ["s", "n"], ["mean"]),
        helper.make_node("Tanh", ["mean"], ["t"]),
        helper.make_node("MatMul", ["t", "w"], ["l"]),
        helper.make_node("Add", ["l", "b"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits += [numpy_helper.from_array(np.array([2], np.int64), "axis2"),
              numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    graph = helper.make_graph(nodes, "tiny-cross-encoder",
                              [ids("input_ids"), ids("attention_mask"), ids("token_type_ids")],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return model.SerializeToString()


def reference_logits(weights, tokenizer_json: str, query: str, docs: list[str]) -> np.ndarray:
    """The tiny model's logits, computed with numpy from the tokenizer's pair encoding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    out = []
    for d in docs:
        e = tok.encode(query, d)
        h = weights["word"][e.ids] + weights["types"][e.type_ids]
        out.append((np.tanh(h.mean(axis=0)) @ weights["w"] + weights["b"])[0])
    return np.array(out)


@pytest.fixture(scope="module")
def tiny():
    """The files of a tiny cross-encoder repo, as {path in repo: bytes}, and its weights."""
    weights = make_weights()
    files = {"tokenizer.json": make_tokenizer_json().encode(),
             "config.json": json.dumps({"architectures": ["BertForSequenceClassification"],
                                        "num_labels": 1, "max_position_embeddings": 512}).encode(),
             "onnx/model.onnx": make_onnx(weights)}
    return files, weights


# -- a fake hub on loopback -----------------------------------------------------------------------

class FakeHub:
    """Serves repos like huggingface.co: `/{repo}/resolve/main/{file}`; the ONNX file (an LFS file on
    the hub) answers with a redirect carrying its sha256 in X-Linked-Etag, as the hub does."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.server = FaultServer().start()
        self.server.default = self.answer

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, seen) -> Reply:
        if seen.path.startswith("/cdn/"):
            sha = seen.path.rsplit("/", 1)[-1]
            for files in self.repos.values():
                for data in files.values():
                    if hashlib.sha256(data).hexdigest() == sha:
                        return Reply(200, body=data)
            return Reply(404, body="no such blob")
        for repo, files in self.repos.items():
            prefix = f"/{repo}/resolve/main/"
            if seen.path.startswith(prefix) and seen.path[len(prefix):] in files:
                data = files[seen.path[len(prefix):]]
                if seen.path.endswith(".onnx"):
                    sha = hashlib.sha256(data).hexdigest()
                    return Reply(302, body="", headers={"Location": f"/cdn/{sha}", "X-Linked-Etag": f'"{sha}"'})
                return Reply(200, body=data)
        return Reply(404, body="Entry not found")

    def downloads(self) -> list[str]:
        return [p for p in self.server.paths() if "/resolve/main/" in p]


@pytest.fixture
def hub(tiny, monkeypatch, tmp_path):
    hub = FakeHub({REPO_NAME: tiny[0]})
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty Hugging Face cache
    yield hub
    hub.server.shutdown()


def ragkit_model_dir(repo: str = REPO_NAME) -> Path:
    import os

    return Path(os.environ["RAGKIT_CACHE_DIR"]) / "models" / repo.replace("/", "--")


# -- the cross-encoder ----------------------------------------------------------------------------

def test_cross_encoder_scores_query_passage_pairs(tiny, tmp_path):
    files, weights = tiny
    ce = CrossEncoder(write_files(tmp_path, files), name="tiny")
    docs = ["Cats eat fish and meat.", "Stock prices fell.", "the dog"] * 7  # more than one batch
    logits = ce.logits("What do cats eat?", docs)
    expected = reference_logits(weights, files["tokenizer.json"].decode(), "What do cats eat?", docs)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ce.score("What do cats eat?", docs), 1 / (1 + np.exp(-expected)), rtol=1e-5)
    # the passage is the second segment: swapping query and passage changes the logit
    assert not np.isclose(ce.logits("Cats eat fish", ["what do cats eat"])[0],
                          ce.logits("what do cats eat", ["Cats eat fish"])[0])
    assert ce.default_threshold == 0.5 and ce.name == "tiny"


def test_cross_encoder_truncates_long_pairs(tiny, tmp_path):
    ce = CrossEncoder(write_files(tmp_path, tiny[0]), max_length=12)
    enc = ce.tokenizer.encode("what do cats eat", "fish " * 100)
    assert len(enc.ids) == 12 and enc.tokens[-1] == "[SEP]"
    assert np.isfinite(ce.score("what do cats eat", ["fish " * 100, "meat"])).all()


def test_a_folder_is_used_as_is(tiny, tmp_path):
    folder = write_files(tmp_path / "my-model", tiny[0])
    assert find_cross_encoder(str(folder)) == (folder, f"from {folder}")
    empty = tmp_path / "empty"
    empty.mkdir()
    path, why = find_cross_encoder(str(empty))
    assert path is None and "tokenizer.json" in why
    path, why = find_cross_encoder("not a repo name")
    assert path is None and "neither a folder nor" in why


def test_downloads_once_then_uses_its_cache(hub, capsys):
    path, how = find_cross_encoder(REPO_NAME)
    assert path == ragkit_model_dir() and how.startswith("downloaded from")
    assert hub.downloads() == [f"/{REPO_NAME}/resolve/main/{f}" for f in
                               ["tokenizer.json", "onnx/model.onnx", "config.json"]]
    for name, data in hub.repos[REPO_NAME].items():
        assert (path / name).read_bytes() == data
    assert not [p for p in path.rglob("*") if p.name.endswith(".part")]

    hub.server.requests.clear()
    again, how = find_cross_encoder(REPO_NAME)
    assert again == path and how == f"from ragkit's cache ({path})"
    assert hub.server.requests == []  # a cache hit asks nothing of the network

    chosen = local_reranker(REPO_NAME)
    assert isinstance(chosen, CrossEncoder) and chosen.name == REPO_NAME
    assert f"reranker {REPO_NAME}, a cross-encoder" in capsys.readouterr().err
    assert hub.server.requests == []


def test_the_default_is_ms_marco_minilm_when_the_hub_has_it(tiny, hub, capsys):
    hub.repos[DEFAULT_CROSS_ENCODER] = tiny[0]
    chosen = local_reranker()
    assert isinstance(chosen, CrossEncoder) and chosen.name == DEFAULT_CROSS_ENCODER
    assert ragkit_model_dir(DEFAULT_CROSS_ENCODER).is_dir()


def test_spec_comes_from_the_environment(hub, monkeypatch, capsys):
    monkeypatch.setenv("RAGKIT_RERANK_MODEL", REPO_NAME)
    assert local_reranker(verbose=False).name == REPO_NAME
    monkeypatch.setenv("RAGKIT_RERANK_MODEL", "local/default")
    assert isinstance(local_reranker(verbose=False), LocalReranker)
    assert hub.downloads() == [f"/{REPO_NAME}/resolve/main/{f}" for f in
                               ["tokenizer.json", "onnx/model.onnx", "config.json"]]
    assert capsys.readouterr().err == ""


def test_finds_the_hugging_face_cache_layout(tiny, monkeypatch, tmp_path):
    # What huggingface_hub leaves behind: blobs, a snapshot per commit, refs/main naming the current one.
    root = tmp_path / "hf" / "hub" / f"models--{REPO_NAME.replace('/', '--')}"
    write_files(root / "snapshots" / "0ld", {"tokenizer.json": tiny[0]["tokenizer.json"]})  # incomplete
    current = write_files(root / "snapshots" / "c0ffee", tiny[0])
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("c0ffee")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # must not be asked
    path, how = find_cross_encoder(REPO_NAME)
    assert path == current and "Hugging Face cache" in how
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # takes priority over HF_HOME
    assert find_cross_encoder(REPO_NAME)[0] is None


def test_offline_mode_says_why_and_falls_back(capsys):
    # conftest sets HF_HUB_OFFLINE=1 and an empty RAGKIT_CACHE_DIR
    path, why = find_cross_encoder(REPO_NAME)
    assert path is None and why.startswith("HF_HUB_OFFLINE=1, so no download")
    chosen = local_reranker(REPO_NAME)
    assert isinstance(chosen, LocalReranker) and chosen.name == "local/minilm-maxsim+lexical"
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0  # one line
    assert err.startswith("ragkit: no cross-encoder found (HF_HUB_OFFLINE=1")
    assert "using local/minilm-maxsim+lexical, measured nDCG@10" in err and "embedding-only on SciFact" in err


def test_unreachable_hub_falls_back(monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with FaultServer() as closed:  # bind a port, then close it: nothing listens there
        port = closed.server_address[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    path, why = find_cross_encoder(REPO_NAME)
    assert path is None and "ConnectError" in why and "tokenizer.json" in why
    assert not ragkit_model_dir().exists()  # no empty folder left behind
    assert isinstance(local_reranker(), LocalReranker)
    assert "no cross-encoder found (GET http://127.0.0.1" in capsys.readouterr().err


def test_wrong_repo_name_says_404(hub):
    path, why = find_cross_encoder("tiny-org/no-such-model")
    assert path is None and why.endswith("returned HTTP 404")


def test_a_cut_download_leaves_no_file_and_is_retried(hub):
    onnx = hub.repos[REPO_NAME]["onnx/model.onnx"]
    answer = hub.answer
    cut = {"left": 1}

    def cut_once(seen):
        if seen.path.startswith("/cdn/") and cut["left"]:
            cut["left"] -= 1
            return Reply(200, body=onnx, cut_at=len(onnx) // 2)
        return answer(seen)

    hub.server.default = cut_once
    path, why = find_cross_encoder(REPO_NAME)
    assert path is None and "onnx/model.onnx" in why
    folder = ragkit_model_dir()
    assert not (folder / "onnx" / "model.onnx").exists()
    assert not [p for p in folder.rglob("*") if p.name.endswith(".part")]
    assert (folder / "tokenizer.json").exists()  # complete files are kept...

    hub.server.requests.clear()
    path, _ = find_cross_encoder(REPO_NAME)  # ...so the retry fetches only what is missing
    assert path == folder and (folder / "onnx" / "model.onnx").read_bytes() == onnx
    assert hub.downloads() == [f"/{REPO_NAME}/resolve/main/{f}" for f in ["onnx/model.onnx", "config.json"]]


def test_a_corrupt_download_is_refused(hub):
    answer = hub.answer

    def corrupt(seen):
        if seen.path.startswith("/cdn/"):
            return Reply(200, body=b"<html>proxy login page</html>")
        return answer(seen)

    hub.server.default = corrupt
    path, why = find_cross_encoder(REPO_NAME)
    assert path is None and "does not match the hub's" in why
    assert not (ragkit_model_dir() / "onnx" / "model.onnx").exists()


def test_an_unloadable_model_falls_back_with_the_reason(tiny, tmp_path, capsys):
    folder = write_files(tmp_path / "broken", {**tiny[0], "onnx/model.onnx": b"not an onnx file"})
    chosen = local_reranker(str(folder))
    assert isinstance(chosen, LocalReranker)
    err = capsys.readouterr().err
    assert f"could not load the cross-encoder in {folder}" in err and "delete that folder" in err


# -- the offline reranker: its parts --------------------------------------------------------------

def test_the_reranker_stems_words_as_bm25_does():
    # Inflections of one word must match, or a question's "hallucinate" misses a passage's "hallucinates".
    assert terms("hallucinate hallucinates hallucination") == ["hallucin"] * 3
    assert terms("binding studies of cells") == tokenize(["binding studies of cells"])[0] == ["bind", "studi", "cell"]
    assert overlap("why do models hallucinate", ["A model hallucinates when ..."])[0, 0] == 1.0


def test_bm25_within_weighs_words_by_how_rare_they_are_among_the_candidates():
    docs = ["cats and dogs eat fish", "dogs eat meat", "dogs sleep", "birds fly"]
    s = bm25_within("do dogs eat fish", docs)
    assert s.argmax() == 0 and s[3] == 0.0
    # 'dogs' is in three of four candidates, 'fish' in one: a fish match beats a dogs match
    assert bm25_within("dogs fish", ["dogs", "fish", "dogs x", "dogs y"])[1] > bm25_within(
        "dogs fish", ["dogs", "fish", "dogs x", "dogs y"])[0]
    assert (bm25_within("the of and", docs) == 0).all()  # stopwords only
    assert bm25_within("anything", []).shape == (0,)


def test_maxsim_takes_each_query_tokens_best_match():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(5, 4))
    doc_a = np.vstack([rng.normal(size=(1, 4)), q[1:4] * 3.0, rng.normal(size=(1, 4))])  # holds every query token
    doc_b = rng.normal(size=(6, 4))
    s = maxsim(q, [doc_a, doc_b])
    assert s[0] == pytest.approx(1.0, abs=1e-5) and s[1] < 1.0
    # one matrix product for all docs gives the same as one doc at a time
    assert np.allclose(s, [maxsim(q, [doc_a])[0], maxsim(q, [doc_b])[0]], atol=1e-6)


def test_windows_cover_a_long_passage_from_word_starts():
    from ragkit.embedder import counting_tokenizer

    tok = counting_tokenizer()
    text = "Title line\n" + " ".join(f"sentence{i} ends here." for i in range(200))
    ws = windows(text)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert ws[0] == text and len(ids) > 600 and len(ws) == 1 + -(-(len(ids) - 254) // 222)
    starts = []
    for w in ws[1:]:  # each a suffix of the text, cut where the model reads the same word pieces
        tail = tok.encode(w, add_special_tokens=False).ids
        assert text.endswith(w) and ids[-len(tail):] == tail
        starts.append(len(ids) - len(tail))
    assert all(0 < b - a <= 222 for a, b in zip([0] + starts, starts))  # overlapping windows of 254
    assert windows("a short passage.") == ["a short passage."]


def test_module_examples_run():
    module = importlib.import_module("ragkit.rerankers")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


# -- the offline reranker, with the real MiniLM ---------------------------------------------------

@pytest.fixture(scope="module")
def offline():
    return LocalReranker()


QUERY = "Does caffeine make it harder to fall asleep?"
PASSAGES = [
    "Stock markets fell sharply on Monday as investors worried about interest rates.",
    "Caffeine taken six hours before bedtime delayed sleep onset and reduced total sleep time.",
    "A recipe for sourdough bread needs flour, water, salt and a starter.",
    "Coffee consumption was associated with a lower risk of type 2 diabetes.",
]


def test_offline_reranker_puts_the_relevant_passage_first(offline):
    s = offline.score(QUERY, PASSAGES)
    assert s.shape == (4,) and s.dtype == np.float64
    assert ((0 <= s) & (s <= 1)).all()
    assert s.argmax() == 1
    assert s[1] >= offline.default_threshold > max(s[0], s[2])


def test_offline_scores_do_not_depend_on_the_order_of_the_passages(offline):
    s = offline.score(QUERY, PASSAGES)
    perm = [2, 0, 3, 1]
    np.testing.assert_allclose(offline.score(QUERY, [PASSAGES[i] for i in perm]), s[perm], rtol=1e-6)


def test_offline_reranker_reuses_token_vectors(monkeypatch):
    r = LocalReranker(cache_mb=1.0)
    calls = []
    real = r.embedder.token_vectors
    monkeypatch.setattr(r.embedder, "token_vectors", lambda texts: calls.append(list(texts)) or real(texts))
    first = r.score(QUERY, PASSAGES)
    second = r.score(QUERY, PASSAGES[::-1])
    np.testing.assert_allclose(second, first[::-1], rtol=1e-6)
    assert len(calls) == 1 and len(calls[0]) == 5
    r.score("sleep", [f"passage {i} " * 100 for i in range(10)])  # 10 x 256 x 384 float16: 2 MB
    assert r._cache_bytes <= 2**20 and len(r._cache) < 11


def test_offline_reranker_handles_no_passages(offline):
    assert offline.score(QUERY, []).shape == (0,)


FILLER = "The committee met on Tuesday to discuss the annual budget of the regional library network. " * 30


def test_a_reading_is_the_retrievers_embedding_plus_windows_sentences_and_title(offline):
    text = "Migratory birds of Norway\n" + FILLER + "Caffeine taken before bedtime delayed sleep onset."
    r = read(offline.embedder, [text])[0]
    assert len(r.windows) == len(windows(text)) >= 2
    # the first window's mean vector is what the retriever embedded (which read the first 256 pieces)
    with pytest.warns(UserWarning, match="longer than 256"):
        embedded = offline.embedder.embed([text])[0]
    np.testing.assert_allclose(r.windows[0].astype(np.float32), embedded, atol=2e-3)
    # 31 sentences (the title line is not one), pooled within each window: more pieces where windows overlap
    assert 31 <= len(r.sentences) <= 31 + 3 * (len(r.windows) - 1)
    last = read(offline.embedder, ["Caffeine taken before bedtime delayed sleep onset."])[0].windows[0]
    cos = r.sentences.astype(np.float32) @ last.astype(np.float32)
    assert cos[-1] > 0.7 and cos[:-1].max() < 0.5  # sentences in text order, the answer last
    np.testing.assert_allclose(np.linalg.norm(r.tokens.astype(np.float32), axis=1), 1, atol=1e-2)
    title = read(offline.embedder, ["Migratory birds of Norway"])[0].windows[0].astype(np.float32)
    assert r.title.astype(np.float32) @ title > (r.sentences.astype(np.float32) @ title).max() + 0.1


def test_offline_reranker_finds_an_answer_beyond_the_models_256_word_pieces(offline):
    answer = "Caffeine taken six hours before bedtime delayed sleep onset and reduced total sleep time."
    late, none = FILLER + answer, FILLER + "The minutes were approved without changes."
    x = offline.features(QUERY, [late, none])
    col = {f: j for j, f in enumerate(FEATURES)}
    assert x[0, col["cosine"]] == pytest.approx(x[1, col["cosine"]], abs=1e-3)  # the first windows are alike
    for f in ("maxsim", "maxp", "sentence"):
        assert x[0, col[f]] > x[1, col[f]] + 0.05, f
    s = offline.score(QUERY, [late, none])
    assert s[0] > s[1] and len(PAIR_SCORES) == 5
