"""``python -m benchmarks.run_all``: the Markdown report renders a section for every saved result."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import run_all
from benchmarks.common import machine_info


def test_report_renders_every_section(tmp_path: Path):
    machine = machine_info()
    metrics = {
        "n": 1,
        "exact_match": 1.0,
        "token_f1": 1.0,
        "bleu": 100.0,
        "chrf": 100.0,
        "mean_tokens": 6.0,
        "tokens_per_vector": 6.0,
    }
    results = {
        "mteb/summary.json": {
            "command": "python -m benchmarks.run_mteb --limit 8",
            "online": False,
            "limit": 8,
            "tasks": {"STSBenchmarkLocal": {"type": "STS", "main_score": "cosine_spearman"}},
            "models": {"glae-st/glae": {"revision": "4b91f0878a7a", "scores": {"STSBenchmarkLocal": 0.8203}}},
            "machine": machine,
        },
        "decode/decode_accuracy.json": {
            "command": "python -m benchmarks.decode_accuracy --limit 8",
            "config": {
                "texts_per_bucket": 8,
                "buckets": {"8": 1},
                "encoders": {"glae": {"max_seq_length": 64, "long_text": "truncate"}},
                "reused": {"from": "old/decode_accuracy.json", "systems": ["glae"]},
            },
            "systems": {"glae": {"0.0": {"buckets": {"8": metrics}, "overall": metrics, "examples": {}}}},
            "machine": machine,
        },
        run_all.RESULT_FILES["audit"]: {
            "command": "python -m benchmarks.inversion_audit --fit-texts 100",
            "audited_texts": 3,
            "glae_own": {"token_f1": 0.5, "exact_match": 0.0, "names_recovered": None, "numbers_recovered": 1.0},
            "models": {
                "all-MiniLM-L6-v2": {
                    "fit": {"texts": 1000},
                    "overall": {"token_f1": 0.3, "exact_match": 0.0, "names_recovered": 0.25, "numbers_recovered": 0.5},
                }
            },
            "machine": machine,
        },
        "scaling/scaling.json": {
            "command": "python -m benchmarks.scaling --texts 8",
            "config": {"texts": 8, "batch_size": 4, "cores": 2},
            "results": [
                {
                    "engine": "single",
                    "workers": 1,
                    "sentences_per_second": 10.0,
                    "startup_seconds": 0.0,
                    "speedup_vs_single": 1.0,
                    "max_abs_diff_vs_single": 0.0,
                },
            ],
            "machine": machine,
        },
    }
    for name, payload in results.items():
        (tmp_path / name).parent.mkdir(parents=True)
        (tmp_path / name).write_text(json.dumps(payload))
    report = run_all.render_report(tmp_path, tmp_path / "RESULTS.md")
    assert "| glae-st/glae | 4b91f0878a7a | 82.03 |" in report
    assert "| glae | 0 | ≤8 | 1 | 6.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in report
    assert (
        "Tokens read per text (longer texts are truncated, or read in chunks if iterative): glae: 64 (truncate)."
        in report
    )
    assert "The rows of glae come from an earlier run on the same texts" in report
    assert "![Decoding fidelity vs text length](decode/decode_accuracy.png)" in report
    assert "## Encoding throughput\n\nNot run." in report
    assert "python -m benchmarks.run_mteb --limit 8\npython -m benchmarks.decode_accuracy --limit 8" in report
    assert "| all-MiniLM-L6-v2 | 1,000 | 30.0 | 0.0 | 25.0 | 50.0 |" in report
    assert "| GLAE itself (its own embeddings) | - | 50.0 | 0.0 | n/a | 100.0 |" in report
    assert "| single | 1 | 10.0 | 1.00x | 0.0 | 0.0e+00 |" in report
    assert "| inversion audit |" in report and "| corpus scale |" in report


def test_rendering_again_keeps_the_hand_written_notes(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(run_all, "report_path", lambda limit: tmp_path / "RESULTS.md")
    monkeypatch.setattr(run_all, "results_dir", lambda limit: tmp_path / "results")
    notes = f"{run_all.HAND_WRITTEN_HEADING}\n\n- measured on 2026-12-06 with `python -m benchmarks.x`\n"
    (tmp_path / "RESULTS.md").write_text("# old generated part\n\n" + notes, encoding="utf-8")
    run_all.main(["--report-only"])
    again = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert again.endswith(notes) and again.count(run_all.HAND_WRITTEN_HEADING) == 1
    assert "# old generated part" not in again
    run_all.main(["--report-only"])
    assert (tmp_path / "RESULTS.md").read_text(encoding="utf-8") == again
