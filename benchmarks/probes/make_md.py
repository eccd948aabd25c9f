"""Assemble benchmarks/results/probes-NAME-cpu-torch2.14.1.md from two `invkit probe all` output folders.

usage: python benchmarks/probes/make_md.py RUN_STANDARD RUN_ROBUST HEADER.md [NAME]
(HEADER.md: the commands, machine and date, written by hand; see run_probes_mnist.sh. NAME: mnist (default) or
tinyimagenet64; figures go to benchmarks/results/probes-NAME/.)
"""

import json
import sys
from pathlib import Path

from PIL import Image

runs = {"standard": Path(sys.argv[1]), "robust": Path(sys.argv[2])}
repo = Path(__file__).resolve().parents[2]
name = sys.argv[4] if len(sys.argv) > 4 else "mnist"
md_path = repo / f"benchmarks/results/probes-{name}-cpu-torch2.14.1.md"
fig_dir = repo / f"benchmarks/results/probes-{name}"
data_label = {"mnist": "MNIST", "tinyimagenet64": "Tiny ImageNet"}.get(name, name)
header = Path(sys.argv[3]).read_text()  # commands, machine, date, written by hand around this script

HEADLINE = {
    "noise-resample": ["diversity_rms", "diversity_ssim", "same_class_as_original"],
    "logit-interpolate": ["max_step_ratio", "path_length_ratio", "class_switches_per_path"],
    "noise-interpolate": ["max_step_ratio", "path_length_ratio", "mean_step_rms"],
    "logit-shift": ["levels", "slopes.brightness", "slopes.contrast", "slopes.sharpness", "measures.class_kept"],
    "logit-scale": ["levels", "slopes.brightness", "slopes.contrast", "slopes.sharpness", "measures.class_kept"],
    "logit-perturb": [
        "levels",
        "measures.brightness",
        "measures.contrast",
        "measures.sharpness",
        "measures.rms_to_unchanged",
        "measures.class_kept",
    ],
    "misclassified": [
        "scanned",
        "misclassified",
        "error_rate",
        "fidelity.misclassified.psnr",
        "fidelity.correct.psnr",
        "fidelity.misclassified.ssim",
        "fidelity.correct.ssim",
        "fidelity.misclassified.identification",
        "fidelity.correct.identification",
        "recon_classified_as_predicted",
        "recon_classified_as_true",
    ],
    "fgsm": [
        "clean_accuracy",
        "adversarial_accuracy",
        "attack_success",
        "recon_adv_classified_as_adv_prediction",
        "recon_adv_classified_as_true",
        "recon_adv_as_adv_prediction_when_attack_succeeds",
    ],
    "ood": [
        "ood_data",
        "in_distribution.rms",
        "ood.rms",
        "rms_ratio_ood_to_in",
        "in_distribution.ssim",
        "ood.ssim",
        "in_distribution.top_softmax",
        "ood.top_softmax",
    ],
    "iterative-stability": [
        "accuracy",
        "n_correct",
        "n_incorrect",
        "identical_correct",
        "identical_incorrect",
        "identical_all",
        "logit_cosine",
    ],
    "brightness-fit": [
        "factors",
        "slope_best_shift_vs_factor",
        "slope_best_log10_scale_vs_factor",
        "slope_logit_shift_vs_factor",
        "slope_logit_scale_vs_factor",
    ],
    "sharpness-fit": [
        "factors",
        "slope_best_shift_vs_factor",
        "slope_best_log10_scale_vs_factor",
        "slope_logit_shift_vs_factor",
        "slope_logit_scale_vs_factor",
    ],
    "rotation": ["rms_to_upright_recon", "rms_baseline_other_image", "ssim_to_upright_recon", "prediction_kept"],
    "class-spread": ["class_spread", "relative_spread", "classes", "images"],
}
FIGURES = [
    ("noise-resample", "samples.png"),
    ("logit-interpolate", "paths.png"),
    ("logit-shift", "reconstructions.png"),
    ("misclassified", "misclassified.png"),
    ("fgsm", "fgsm.png"),
    ("ood", "ood.png"),
]


def get(d, key):
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


docs = {k: {p.parent.name: json.loads(p.read_text()) for p in r.glob("*/results.json")} for k, r in runs.items()}
out = [header.rstrip(), ""]
out.append("## Numbers (standard vs robust classifier, each with its own biggan_proj inverter)\n")
for probe, keys in HEADLINE.items():
    out.append(f"### `{probe}`\n")
    out.append("| number | standard | robust |\n| --- | --- | --- |")
    for key in keys:
        out.append(
            f"| {key} | " + " | ".join(fmt(get(docs[k].get(probe, {}).get("numbers", {}), key)) for k in runs) + " |"
        )
    out.append(
        "| seconds (wall, this probe) | "
        + " | ".join(fmt(docs[k].get(probe, {}).get("run", {}).get("seconds")) for k in runs)
        + " |"
    )
    for k in runs:
        if probe not in docs[k]:
            out.append(f"\n({k}: not run)")
    if probe in ("brightness-fit", "sharpness-fit"):
        for k in runs:
            rows = get(docs[k].get(probe, {}).get("numbers", {}), "per_factor") or []
            if rows:
                cols = [
                    "factor",
                    "logit_shift_mean",
                    "logit_shift_std",
                    "logit_scale_mean",
                    "logit_scale_std",
                    "best_shift_pixels",
                    "best_scale_pixels",
                    "best_shift_measure",
                    "best_scale_measure",
                    "rms_at_best_shift",
                    "rms_unmanipulated",
                ]
                out.append(f"\nPer factor, {k}:\n")
                out.append("| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols))
                for r in rows:
                    out.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    out.append("")
    if probe == "iterative-stability":
        out.append(
            "Beside the paper (supplement §5; ImageNet, ResNet-152, 1000 classes — not directly comparable with "
            f"{'10-class MNIST' if name == 'mnist' else data_label}):\n"
        )
        out.append("| | identical, correct originals | identical, incorrect originals |\n| --- | --- | --- |")
        for k in runs:
            n = docs[k].get(probe, {}).get("numbers", {})
            out.append(f"| this run, {k} | {fmt(n.get('identical_correct'))} | {fmt(n.get('identical_incorrect'))} |")
        out.append("| paper, robust | 0.54 | 0.35 |\n| paper, standard | 0.493 | 0.299 |\n")
    if probe == "class-spread":
        out.append("Beside the paper (§5.5; ImageNet, 10 random classes, L2 distance of logits to class mean):\n")
        out.append("| | standard | robust |\n| --- | --- | --- |")
        out.append(
            f"| this run ({data_label}) | "
            + " | ".join(fmt(get(docs[k].get(probe, {}).get("numbers", {}), "class_spread")) for k in runs)
            + " |"
        )
        out.append("| paper (ImageNet) | 42.33 | 43.78 |\n")
out.append("## Figures\n")
fig_dir.mkdir(parents=True, exist_ok=True)
for probe, figure in FIGURES:  # not `name`: that is the data set's, used in the links
    line = []
    for k in runs:
        src = runs[k] / probe / figure
        if not src.exists():
            continue
        dest = fig_dir / f"{k}-{probe}-{figure}"
        img = Image.open(src)
        img.save(dest, optimize=True)
        line.append(f"[{k}]({fig_dir.name}/{dest.name})")
    out.append(f"- `{probe}` ({figure}): " + ", ".join(line))
out.append(
    "\nEvery probe's full numbers, tables and figures are in its `index.html` and `results.json` under the "
    "`--out` folders of the commands above (not committed).\n"
)
md_path.write_text("\n".join(out))
total = sum(p.stat().st_size for p in fig_dir.glob("*.png"))
print(md_path, f"figures {total / 1e6:.2f} MB")
