# Solutions to the "Try this" exercises of chapter 9 (notebooks/09-your-documents.ipynb). They run in
# the chapter's kernel after its last cell, so they use its variables (`backend`, `folder`, ...).
# Everything here runs offline: "your own folder" is a folder that ships with this repository, the
# "scan" and the "web page" are written on the spot.

# %% [markdown]
# ## Try this: your own folder
#
# `docs = ragkit.load_documents("path/to/your/docs")`, then the cells of the chapter. Any folder of
# Markdown, text, HTML or PDF files will do; here it is the workbook's own `docs/` folder (its glossary,
# and whatever other pages it holds when you run this), one level up from `notebooks/`.

# %%
my_folder = Path("..") / "docs"
with warnings.catch_warnings(record=True) as my_warnings:
    warnings.simplefilter("always")
    my_docs = ragkit.load_documents(my_folder)
print("skipped or damaged:", [str(w.message) for w in my_warnings] or "none")
my_chunks = ragkit.chunk_documents(my_docs, "heading")
my_index = ragkit.build_index(my_chunks, backend, progress=False)
print(f"{len(my_docs)} documents ({', '.join(d.id for d in my_docs)}), {len(my_chunks)} chunks")
mine = ragkit.ask("What are qrels?", my_index, backend, answer=False)
mine.to_frame().head(3)

# %% [markdown]
# The folder is read as it is, with no code of our own: the best chunk is the glossary's entry for
# **Qrels**, and its `where` (`glossary.md`, no page: a Markdown file has none) is what a citation would
# show. From a terminal the same is `ragkit index ../docs/` then `ragkit ask "What are qrels?"`, and
# `ragkit ask --json "..."` prints each source's file, page and scores. Here no file was skipped; on
# your own folder, read that line first: a file you expected and do not find was skipped, and the
# warning says why.

# %%
assert "glossary.md" in [d.id for d in my_docs] and len(my_index) == len(my_chunks) > 1 and not my_warnings
best = mine.reranked[0]
assert best.chunk.doc_id == "glossary.md" and "**Qrels**" in best.chunk.text and best.chunk.where == "glossary.md"
assert mine.kept and mine.kept[0] is best

# %% [markdown]
# ## Try this: a scanned PDF
#
# There is no OCR program offline, so we look at what ragkit does *without* one, and then at what a
# text layer changes. A PDF that is entirely a scan (the chapter's `scan.pdf`) is skipped with a
# warning. The subtler case is a PDF where *one* page is a scan: here, the lighthouse report with its
# page 2 (the lamp) written with no text layer, which is how a scanned page looks to a PDF reader.

# %%
from ragkit.workbook.samples import REPORT_PAGES, REPORT_TITLE, write_pdf

scans = Path(tempfile.mkdtemp())
write_pdf(scans / "report.pdf", [REPORT_PAGES[0], [], REPORT_PAGES[2]], title=REPORT_TITLE)  # page 2: no text
with warnings.catch_warnings(record=True) as scan_warnings:
    warnings.simplefilter("always")
    half_scanned = ragkit.load_documents(scans / "report.pdf")
print("warning:", *(str(w.message).replace(f"{scans}/", "") for w in scan_warnings))  # without the temp folder
lamp = "How many watts does the new lighthouse lamp use?"
scan_index = ragkit.build_index(ragkit.chunk_documents(half_scanned, "heading"), backend, progress=False)
no_ocr = ragkit.ask(lamp, scan_index, backend, answer=False)
no_ocr.to_frame()

# %% [markdown]
# ragkit indexes the two pages it can read and warns, naming page 2. The question about the lamp is
# *not* refused: page 1 mentions "the lamp" (it lists what the report covers), clears the threshold and
# would go to the model, without the wattage, which was on the missing page. A partly scanned PDF does
# not fail loudly; it answers from the wrong page. Read the warnings when you index.
#
# OCR (for example `ocrmypdf scan.pdf scan-ocr.pdf`) recognises the letters in the page's picture and
# adds them to the PDF as an invisible text layer over it, which is all ragkit reads. We cannot run
# OCR here, so we write the PDF that OCR would give us, the same three pages with their text:

# %%
write_pdf(scans / "report-ocr.pdf", REPORT_PAGES, title=REPORT_TITLE)
with warnings.catch_warnings(record=True) as ocr_warnings:
    warnings.simplefilter("always")
    ocred = ragkit.load_documents(scans / "report-ocr.pdf")
ocr_index = ragkit.build_index(ragkit.chunk_documents(ocred, "heading"), backend, progress=False)
with_ocr = ragkit.ask(lamp, ocr_index, backend, answer=False)
with_ocr.to_frame()

# %% [markdown]
# With a text layer on every page there is no warning, and the lamp question finds page 2 first, by a
# wide margin, with the 35-watt LED in its text: a citation would say `report-ocr.pdf p. 2`. Real OCR is
# not this clean (misread characters, columns read in the wrong order), so look at `doc.text` of an
# OCR'd file before trusting it.

# %%
assert len(scan_warnings) == 1 and "page(s) 2 have no text layer" in str(scan_warnings[0].message)
assert [c.page for c in scan_index.chunks] == [1, 3] and len(half_scanned[0].pages) == 3
assert [h.chunk.page for h in no_ocr.kept] == [1] and "the lamp" in no_ocr.kept[0].chunk.text and not any("35-watt" in h.chunk.text for h in no_ocr.reranked)
assert not ocr_warnings and [c.page for c in ocr_index.chunks] == [1, 2, 3]
assert with_ocr.kept[0].chunk.where == "report-ocr.pdf p. 2" and "35-watt" in with_ocr.kept[0].chunk.text
assert with_ocr.kept[0].score > no_ocr.kept[0].score and with_ocr.reranked[1].score < with_ocr.kept[0].score / 10

# %% [markdown]
# ## Try this: a noisy web page
#
# Save a page from a site you use and look at `doc.text`: is the menu gone? Offline, here is a page
# shaped like a blog post saved from a browser: a header with a menu, breadcrumbs, tracking scripts,
# a newsletter form inside the article, related posts, a hidden cookie dialog and a footer.

# %%
noisy = """<!doctype html><html><head><title>Reading a tide table | Harbour blog</title>
<style>.menu { display: flex }</style>
<script>gtag('config', 'G-123');</script></head>
<body>
<header><a href="/">Harbour blog</a>
  <nav><ul><li><a href="/">Home</a></li><li><a href="/archive">Archive</a></li></ul></nav></header>
<div role="navigation" class="breadcrumbs"><a href="/">Home</a> / <a href="/guides">Guides</a></div>
<article>
<h1>Reading a tide table</h1>
<p>A tide table gives the times and heights of high and low water for one port, day by day.</p>
<h2>Spring and neap tides</h2>
<p>Near a new or full moon the range between high and low water is largest: these are spring tides.</p>
<form><p>Subscribe to our newsletter</p><input type="email"><button>Sign up</button></form>
</article>
<aside><h3>Related posts</h3><ul><li><a href="/knots">Ten knots every sailor knows</a></li></ul></aside>
<div hidden class="modal"><p>Accept all cookies?</p></div>
<footer><p>Harbour blog, 2026. <a href="/privacy">Privacy</a></p></footer>
<script>document.querySelector(".modal").hidden = false;</script>
</body></html>"""
(scans / "tides.html").write_text(noisy, encoding="utf-8")
page = ragkit.load_documents(scans / "tides.html")[0]
print(f"title: {page.title!r}\n")
print(page.text)

# %% [markdown]
# Only the article is left: its two headings, as Markdown headings, and its two paragraphs. The menu
# (in `<nav>`), the breadcrumbs (`role="navigation"`), the form, the related posts (`<aside>`), the
# hidden dialog, the footer and the scripts are gone. ragkit recognises them by their *tags and roles*,
# which a well-made page uses. A page built only of `<div>`s gives it nothing to go by:

# %%
removed = ["Archive", "Guides", "newsletter", "Related posts", "cookies", "Privacy", "gtag", "querySelector"]
assert page.title == "Reading a tide table | Harbour blog"
assert page.text.startswith("# Reading a tide table") and "## Spring and neap tides" in page.text
assert "spring tides." in page.text and not [w for w in removed if w in page.text]

# %%
from ragkit.documents import html_text

title, div_soup = html_text('<body><div class="menu"><ul><li><a href="/">Home</a></li><li><a href="/archive">'
                            'Archive</a></li></ul></div><div class="post"><p>A tide table gives the times of '
                            'high water.</p></div></body>')
print(div_soup)

# %% [markdown]
# Its menu, a list of links in a `<div class="menu">`, stays in the text as two short lines, because
# nothing in the markup says it is a menu. If your site is built like that, index the page's main part
# (save just the article, or cut the menu out with BeautifulSoup before loading), or the menu's words
# will be in every chunk of every page and match every question that uses them.

# %%
assert div_soup.split("\n\n") == ["Home", "Archive", "A tide table gives the times of high water."], div_soup

# %% [markdown]
# ## Try this: dates of your own
#
# A note that states its date in front matter; the filter then searches it alone, since no other
# sample is from 2025.

# %%
note = Path(tempfile.mkdtemp()) / "winter.md"
note.write_text("---\ndate: 2025-01-15\n---\n# Winter check\n\nIn January the keepers tested the fog horn: "
                "it sounds once every thirty seconds in fog.\n", encoding="utf-8")
[dated] = ragkit.load_documents(note)
dated_index = ragkit.build_index(ragkit.chunk_documents(docs + [dated], "heading"), backend, progress=False)
in_2025 = ragkit.ask("How often does the fog horn sound?", dated_index, backend, where={"date": "2025"},
                     answer=False)
print(dated.id, dated.date, [(h.chunk.id, h.chunk.date) for h in in_2025.retrieved])

# %% [markdown]
# Only the note's chunks are searched, every one carrying its document's date. Without the filter the
# report and the rules are searched as well; a document that states no date gets its file's day, so a
# folder of notes written today all count as today's.

# %%
assert dated.date == "2025-01-15" and in_2025.retrieved
assert {(h.chunk.doc_id, h.chunk.date) for h in in_2025.retrieved} == {("winter.md", "2025-01-15")}
