"""The page of a two-alternative forced-choice study (``invkit study make``): one self-contained HTML file.

Everything the participant sees is in the file: the trials as JSON in a ``<script type="application/json">``
block, each image a PNG ``data:`` URI, the style and the script inline; it loads nothing from the network or
from disk. The page is blind: it holds for each trial only a left, an original and a right image, never which
method made which (that is in ``study_key.json``, which the page does not load).

What the script does (docs/study.md, "What the page shows"):

* shows trial ``k`` of ``n``: the original (the ground truth) in the middle, the two reconstructions left and right,
  the question of the paper's Table 1 above them and ``answered / n`` beside it;
* takes an answer by a click on a reconstruction or by a key (left arrow or 1, right arrow or 2; Backspace takes
  the last answer back), ignoring keys typed into the subject id field, and records the side and the response time
  in milliseconds from the moment the trial was shown;
* keeps the subject id and the answers in ``localStorage`` under ``invkit-study:<study id>``, so a reload goes on
  where it was;
* on "Save answers" (once a subject id is filled in) downloads ``answers-<study id>-<subject>.json`` and shows the
  same JSON in a text box, for a browser that blocks downloads.
"""

from __future__ import annotations

import html
import json
from typing import Any

ANSWERS_FORMAT = "invkit-study-answers"  # the "format" field of a saved answers file
ANSWERS_VERSION = 1  # its "version"
STORAGE_PREFIX = "invkit-study:"  # localStorage key prefix; the study id follows

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1000px;color:#222;
text-align:center}
[hidden]{display:none!important}
h1{font-size:1.3em} #question{font-size:1.2em;font-weight:600;margin:.6em 0}
#trial{display:flex;justify-content:center;align-items:flex-start;gap:1.2em;margin:1em 0}
figure{margin:0} figcaption{color:#555;font-size:.9em;margin-top:.3em}
img{image-rendering:pixelated;display:block}
button.choice{padding:6px;border:3px solid #bbb;border-radius:6px;background:#fff;cursor:pointer}
button.choice:hover,button.choice:focus{border-color:#1a6fd1}
#original-figure img{border:3px solid #222;padding:6px;border-radius:6px}
#bar{display:flex;justify-content:center;gap:1.5em;align-items:center;flex-wrap:wrap}
#done{font-weight:600} textarea{width:100%;height:8em;font-family:monospace;font-size:.8em}
.hint{color:#555;font-size:.9em}
"""

# The script reads the trials from #study-data and keeps its state in localStorage (see the module docstring).
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("study-data").textContent);
  var storeKey = "__STORAGE_PREFIX__" + data.study_id;
  var state = {subject: "", answers: []};
  try {
    var saved = JSON.parse(localStorage.getItem(storeKey) || "null");
    if (saved && Array.isArray(saved.answers)) { state = {subject: saved.subject || "", answers: saved.answers}; }
  } catch (e) { /* no storage, or what it holds is not ours: start afresh */ }
  var $ = function (id) { return document.getElementById(id); };
  var shownAt = performance.now();

  function persist() {
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* private mode: no reload safety */ }
  }
  function show() {
    var k = state.answers.length;
    $("progress").textContent = k + " / " + data.n;
    $("undo").disabled = k === 0;
    if (k >= data.n) {
      $("trial").hidden = true;
      $("done").hidden = false;
      return;
    }
    $("trial").hidden = false;
    $("done").hidden = true;
    var t = data.trials[k];
    $("trial-number").textContent = "Image " + (k + 1) + " of " + data.n;
    $("left-image").src = t.left;
    $("original-image").src = t.original;
    $("right-image").src = t.right;
    shownAt = performance.now();
  }
  function answer(side) {
    var k = state.answers.length;
    if (k >= data.n) { return; }
    state.answers.push({trial: k, side: side, rt_ms: Math.round(performance.now() - shownAt)});
    persist();
    show();
  }
  function undo() {
    if (state.answers.length) { state.answers.pop(); persist(); show(); }
  }
  function save() {
    var subject = $("subject").value.trim();
    if (!subject) {
      $("save-status").textContent = "Enter your subject id first.";
      $("subject").focus();
      return;
    }
    state.subject = subject;
    persist();
    var doc = {
      format: "__ANSWERS_FORMAT__", version: __ANSWERS_VERSION__, study_id: data.study_id,
      trials_digest: data.trials_digest, n: data.n, subject: subject,
      complete: state.answers.length === data.n, saved_at: new Date().toISOString(),
      answers: state.answers
    };
    var text = JSON.stringify(doc, null, 1);
    $("saved").value = text;
    $("saved").hidden = false;
    var name = "answers-" + data.study_id + "-" + subject.replace(/[^A-Za-z0-9._-]/g, "_") + ".json";
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    $("save-status").textContent = "Saved " + state.answers.length + " of " + data.n + " answers as " + name + ".";
  }
  $("left").addEventListener("click", function () { answer("left"); });
  $("right").addEventListener("click", function () { answer("right"); });
  $("undo").addEventListener("click", undo);
  $("save").addEventListener("click", save);
  $("subject").value = state.subject;
  $("subject").addEventListener("input", function () { state.subject = $("subject").value.trim(); persist(); });
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || e.altKey || e.ctrlKey || e.metaKey) { return; }
    if (e.key === "ArrowLeft" || e.key === "1") { e.preventDefault(); answer("left"); }
    else if (e.key === "ArrowRight" || e.key === "2") { e.preventDefault(); answer("right"); }
    else if (e.key === "Backspace") { e.preventDefault(); undo(); }
  });
  show();
  document.body.setAttribute("data-ready", "1");
})();
"""


def render_page(study: dict[str, Any], question: str, size: tuple[int, int]) -> str:
    """The study page's HTML.

    Args:
        study: ``study_id``, ``trials_digest``, ``n`` and ``trials``, a list of ``{"left", "original", "right"}``
            PNG data URIs (nothing else: the page must not say which method made which image).
        question: the question asked, as in the paper's Table 1.
        size: ``(height, width)`` in CSS pixels the images are shown at (their PNGs are already that size).

    Returns:
        One HTML document, UTF-8 text; it loads nothing from outside itself.
    """
    h, w = size
    payload = json.dumps(study, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the block
    script = (
        _SCRIPT.replace("__STORAGE_PREFIX__", STORAGE_PREFIX)
        .replace("__ANSWERS_FORMAT__", ANSWERS_FORMAT)
        .replace("__ANSWERS_VERSION__", str(ANSWERS_VERSION))
    )
    q = html.escape(question)

    def figure(side: str, caption: str) -> str:
        img = f'<img id="{side}-image" width="{w}" height="{h}" alt="{caption}">'
        if side == "original":
            return f'<figure id="original-figure">{img}<figcaption>{caption}</figcaption></figure>'
        return (
            f'<figure><button class="choice" id="{side}" type="button" title="{caption}">{img}</button>'
            f"<figcaption>{caption}</figcaption></figure>"
        )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reconstruction study</title>
<style>{_CSS}</style></head>
<body>
<h1>Reconstruction study</h1>
<p class="hint">The image in the middle is the ground truth. Pick the reconstruction, left or right, that is closer to
it: click it, or press &larr; or 1 for the left one and &rarr; or 2 for the right one (Backspace takes the last
answer back). Your answers are kept in this browser if you reload the page.</p>
<div id="bar"><span>answered <b id="progress">0 / {study["n"]}</b></span>
<button id="undo" type="button" disabled>Back</button></div>
<p id="question">{q}</p>
<div id="trial">
{figure("left", "left reconstruction")}
{figure("original", "ground truth")}
{figure("right", "right reconstruction")}
</div>
<p id="trial-number" class="hint"></p>
<p id="done" hidden>All {study["n"]} images answered. Thank you! Fill in your subject id and save your answers.</p>
<p><label>Subject id <input id="subject" type="text" autocomplete="off"></label>
<button id="save" type="button">Save answers</button> <span id="save-status" class="hint"></span></p>
<textarea id="saved" readonly hidden aria-label="saved answers"></textarea>
<script type="application/json" id="study-data">{payload}</script>
<script>{script}</script>
</body></html>
"""
