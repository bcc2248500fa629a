"""Answer checks in German, Chinese and Arabic (issue 14, finding 6, the support-check part): a correct
top-ranked source is not refused, and gibberish is not passed as supported.

The documents are short paragraphs written for these tests; the models are the real local ones.
"""
from __future__ import annotations

import pytest

from test_generate import ScriptedChat, hit
from ragkit.chunking import chunk_documents
from ragkit.checks import NOT_IN_CONTEXT, check_answer, content_words, split_sentences
from ragkit.generate import generate
from ragkit.index import build_index
from ragkit.pipeline import ask
from ragkit.types import Document

CORPORA = {
    "de": ([Document("kaffee", "Kaffeebohnen werden bei etwa 200 Grad geröstet. Eine helle Röstung schmeckt "
                               "fruchtiger und säuerlicher, eine dunkle Röstung ist bitterer. Nach dem Rösten "
                               "müssen die Bohnen einige Tage ruhen, bevor sie gemahlen werden, denn frisch "
                               "geröstete Bohnen geben noch Kohlendioxid ab.", "Kaffee rösten"),
            Document("fahrrad", "Die Kette eines Fahrrads sollte alle paar hundert Kilometer gereinigt und geölt "
                                "werden. Ein zu niedriger Reifendruck erhöht den Rollwiderstand und die Gefahr "
                                "einer Panne.", "Fahrradpflege"),
            Document("brot", "Ein Sauerteig braucht Zeit: Mehl und Wasser gären bei Zimmerwärme mehrere Tage, bis "
                             "Hefen und Milchsäurebakterien den Teig lockern.", "Brot backen")],
           "Bei welcher Temperatur werden Kaffeebohnen geröstet?",
           "Küsten und Wüsten werden bei Gerüsten gerüstet, denn die Tage müssen büßen [1]."),
    "zh": ([Document("tea", "绿茶是用未经发酵的茶叶制成的。冲泡绿茶的水温最好在八十度左右，水太热会让茶变苦。"
                            "泡茶的时间一般是两到三分钟。", "绿茶"),
            Document("panda", "大熊猫主要生活在中国四川的山区。它们每天要吃十几公斤竹子，一天中大部分时间都在吃东西和睡觉。",
                     "大熊猫"),
            Document("wall", "长城修建于两千多年前，用来抵御北方的入侵。今天它是中国最有名的旅游景点之一。", "长城")],
           "冲泡绿茶的水温应该是多少？",
           "熊猫喜欢在长城上喝咖啡 [1]。"),
    "ar": ([Document("coffee", "تزرع القهوة في المناطق الاستوائية المرتفعة. تحمص حبوب القهوة على درجة حرارة تقارب "
                               "مئتي درجة مئوية، ثم تطحن قبل التحضير. التحميص الخفيف يعطي طعماً حامضاً، والتحميص "
                               "الداكن يعطي طعماً مراً.", "تحميص القهوة"),
            Document("palm", "تنمو أشجار النخيل في المناخ الحار والجاف. يحصد التمر في نهاية الصيف، ويجفف بعضه في "
                             "الشمس ليحفظ طوال العام.", "النخيل"),
            Document("camel", "يستطيع الجمل أن يعيش أياماً طويلة دون ماء، لأنه يخزن الدهون في سنامه ويفقد القليل "
                              "من الماء في العرق.", "الجمل")],
           "على أي درجة حرارة تحمص حبوب القهوة؟",
           "الجمل يشرب الحليب في الشتاء [1]."),
}


@pytest.fixture(scope="module")
def ranked(local_backend):
    """Each language's question, retrieved and reranked over its own three documents."""
    out = {}
    for lang, (docs, question, _) in CORPORA.items():
        index = build_index(chunk_documents(docs, "heading"), local_backend, progress=False)
        out[lang] = ask(question, index, local_backend, answer=False).reranked
    return out


@pytest.mark.parametrize("lang", sorted(CORPORA))
def test_the_correct_top_ranked_source_is_not_refused(lang, ranked, local_backend):
    docs, question, _ = CORPORA[lang]
    hits = ranked[lang]
    assert hits[0].chunk.doc_id == docs[0].id  # retrieval and reranking found it
    # The top one alone, as the relevance threshold keeps it for de and zh (the others score under 0.01).
    # For ar the offline reranker scores it 0.08, under the threshold 0.16: a reranker matter, not
    # the support check's; this test gives the check the top-ranked source all the same.
    answer = generate(question, hits[:1], local_backend)
    assert answer.text != NOT_IN_CONTEXT and answer.mode != "not_in_context", answer
    assert [c.hit.chunk.doc_id for c in answer.citations][:1] == [docs[0].id], answer


@pytest.mark.parametrize("lang", sorted(CORPORA))
def test_gibberish_is_not_passed_as_supported(lang, ranked, local_backend):
    docs, question, gibberish = CORPORA[lang]
    chat = ScriptedChat(gibberish, embedder=local_backend)
    answer = generate(question, ranked[lang][:1], chat, strict=True)
    bare = gibberish.split(" [1]")[0]
    assert bare not in answer.text and answer.mode == "extractive", answer
    assert any("unsupported" in n and bare in n for n in answer.notes), answer.notes
    assert answer.citations and answer.citations[0].hit.chunk.doc_id == docs[0].id  # the source is quoted


def test_a_copied_sentence_is_supported_in_every_script():
    for docs, _, _ in CORPORA.values():
        first = split_sentences(docs[0].text)[0]
        text, cited, mode, notes = check_answer("?", f"{first[:-1]} [1]{first[-1]}", [hit(1, docs[0].text)])
        assert cited == [1] and mode in {"generated", "checked"} and notes == [], (first, notes)


def test_sentences_and_words_outside_ascii():
    assert split_sentences("绿茶很好。红茶也好！你喜欢吗？") == ["绿茶很好。", "红茶也好！", "你喜欢吗？"]
    assert split_sentences("تزرع القهوة. هل تحب القهوة؟ نعم") == ["تزرع القهوة.", "هل تحب القهوة؟", "نعم"]
    assert content_words("Größe") == content_words("GRÖSSE") == {"grösse"}
    assert content_words("والقهوة") == content_words("القهوة") == content_words("قَهْوَة") == {"قهوة"}
    assert content_words("绿茶") == {"绿茶"} and content_words("冲泡绿茶") == {"冲泡", "泡绿", "绿茶"}
