"""Benchmark: predictions of a production model version.

Run: .venv/bin/python -m bench.predict [--videos 100000] [--dimensions 1024] [--requests 300]

Uses its own database (cvsa_bench_predict) on the embedded server of ``CVSA_DATA_DIR``
(the dev data is untouched) and a temporary artifacts folder. It seeds ``--videos``
videos with Bilibili-like texts, stores each composed text's vector (random, binary
COPY) under the text's checksum, and registers an MLP (``--dimensions`` → 256 → 1,
random weights) as the production version of model "bench". Then it prints:

- single prediction latency: ``POST /api/v1/predict {"aids": [one aid]}`` through
  Django's test client (the whole stack: session authentication, role check, the
  per-request production check, the video, its vector by COPY, the forward pass, JSON),
  ``--requests`` calls after a warm-up; p50 / p95 / max. Target p95 < 20 ms.
- batch scoring throughput: a scoring job over every video (``scoring_job_run`` in this
  process: videos read in chunks, texts composed and hashed, vectors by binary COPY,
  forward pass, predictions written by COPY + upsert), first run (inserts) and second
  run (replaces); videos/s, with the time split by step. Target ≥ 20,000 videos/s.

It is a benchmark, not a test: it prints numbers and exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import bench_embedding_model, embedding_rows_payload, setup_django, videos_copy  # noqa: E402

BENCH_DATABASE = "cvsa_bench_predict"
MODEL_KEY = "bench-predict"


def _setup_django(artifacts: Path) -> None:
    setup_django(BENCH_DATABASE)
    from django.conf import settings
    from django.test.utils import setup_test_environment

    settings.CVSA_ARTIFACTS_DIR = artifacts
    setup_test_environment()  # the test client's host, DEBUG off


# --- seeding --------------------------------------------------------------------------


def _video_text(n: int) -> tuple[str, str, str]:
    return (f"【初音ミク】bench song {n} 原创曲 PV",
            f"作词作曲：bench producer {n % 97}。这是第 {n} 个视频的简介，歌曲很好听，欢迎收藏。https://example.com/{n}",
            "VOCALOID,初音ミク,原创,bench")


def _seed(videos: int, dimensions: int, seed: int):
    """The videos, their vectors and a production version; the version."""
    import numpy as np
    import torch
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from core import pgcopy
    from datasets.models import Dataset, DatasetVersion, DatasetVersionStatus
    from datasets.text_composition import TEXT_TEMPLATE_VERSION, compose_video_text, text_checksum
    from experiments.models import Experiment, Run, RunStatus
    from experiments.services import run_artifact_dir
    from training.architectures import resolve_config
    from training.models import ModelStage, ModelVersion, RegisteredModel
    from training.served_models import file_sha256

    generator = np.random.default_rng(seed)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE training_prediction, training_scoringjob, training_modelversiontransition, "
                "training_modelversion, training_registeredmodel, experiments_run, experiments_experiment, "
                "datasets_datasetversionitem, datasets_datasetversion, datasets_dataset, datasets_embedding, "
                "labeling_video RESTART IDENTITY CASCADE"
            )
        model = bench_embedding_model(MODEL_KEY, dimensions)
        texts = [_video_text(n) for n in range(1, videos + 1)]
        checksums = [text_checksum(compose_video_text(title=title, description=description, tags=tags))
                     for title, description, tags in texts]
        with connection.cursor() as cursor:
            videos_copy(cursor, texts)
        vectors = generator.standard_normal((videos, dimensions), dtype=np.float32)
        pgcopy.copy_in(
            "COPY datasets_embedding (id, model_id, checksum, dimensions, vector, created_at) FROM STDIN (FORMAT BINARY)",
            embedding_rows_payload(model.pk, checksums, vectors),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval('datasets_embedding_id_seq', %s)", [videos])
        dataset_version = DatasetVersion.objects.create(
            dataset=Dataset.objects.create(name="bench-predict"), number=1, embedding_model=model,
            embedding_dimensions=dimensions, selection={"strategy": "bench"},
            text_template_version=TEXT_TEMPLATE_VERSION, train_ratio=0.8, val_ratio=0.1, test_ratio=0.1, seed=seed,
            status=DatasetVersionStatus.READY, content_hash="0" * 64, frozen_at=timezone.now(),
        )
        experiment = Experiment.objects.create(name="bench-predict", default_dataset_version=dataset_version,
                                               metric_key="val_f1", metric_direction="max")
        run = Run.objects.create(experiment=experiment, name="bench", status=RunStatus.SUCCEEDED,
                                 dataset_version=dataset_version, architecture_key="mlp", seed=seed,
                                 queued_at=timezone.now(), started_at=timezone.now(), finished_at=timezone.now())
        config = resolve_config("mlp", {"hidden_sizes": "256", "seed": seed})
        torch.manual_seed(seed)
        module = config.build_model(dimensions)
        folder = run_artifact_dir(run.pk)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": module.state_dict(), "config": config.as_dict(), "threshold": 0.5,
                    "input_dimensions": dimensions}, folder / "model.pt")
        registered = RegisteredModel.objects.create(name="bench")
        version = ModelVersion.objects.create(
            registered_model=registered, number=1, run=run, embedding_model=model, input_dimensions=dimensions,
            threshold=0.5, architecture_key="mlp", weights_sha256=file_sha256(folder / "model.pt"),
            stage=ModelStage.PRODUCTION,
        )
        user, _ = get_user_model().objects.get_or_create(username="bench-labeler")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE labeling_video, datasets_embedding")
    return version, user


# --- measurements ------------------------------------------------------------------------


def _latency(user, aids: list[int], requests: int) -> list[float]:
    from django.contrib.auth.models import Group
    from django.test import Client

    from core.roles import LABELERS

    user.groups.add(Group.objects.get_or_create(name=LABELERS)[0])
    client = Client()
    client.force_login(user)
    timings = []
    for index in range(requests + 20):
        body = {"aids": [aids[index % len(aids)]]}
        started = time.perf_counter()
        response = client.post("/api/v1/predict", body, content_type="application/json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content
        if index >= 20:  # warm-up: weights loaded, statements and connection warm
            timings.append(elapsed * 1000)
    return timings


class _StepTimer:
    """Wall time per step of a scoring job, by wrapping the functions it calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.originals = []

    def wrap(self, module, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        self.originals.append((module, name, original))
        setattr(module, name, timed)

    def restore(self) -> None:
        for module, name, original in self.originals:
            setattr(module, name, original)


def _score_all(version) -> tuple[float, int, dict[str, float]]:
    from training import services
    from training.services import scoring

    timer = _StepTimer()
    timer.wrap(scoring, "compose_video_text", "compose text")
    timer.wrap(scoring, "stored_vectors", "vectors (COPY out)")
    timer.wrap(scoring, "predictions_store", "write (COPY in + upsert)")
    job = services.scoring_job_create(version_id=version.pk, enqueue=False)
    started = time.perf_counter()
    try:
        finished = services.scoring_job_run(job.pk)
    finally:
        timer.restore()
    elapsed = time.perf_counter() - started
    assert finished.status == "succeeded", finished.error
    return elapsed, finished.done, dict(timer.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvsa-bench-predict-") as folder:
        _setup_django(Path(folder))
        import torch

        from training.models import Prediction

        print(f"seeding {args.videos} videos with {args.dimensions}-d vectors …", flush=True)
        started = time.perf_counter()
        version, user = _seed(args.videos, args.dimensions, args.seed)
        print(f"seeded in {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}, "
              f"CPUs {os.cpu_count()}")

        timings = _latency(user, list(range(100_000_001, 100_000_001 + min(args.videos, 1000))), args.requests)
        quantiles = statistics.quantiles(timings, n=100)
        print(f"single prediction through the API ({len(timings)} requests): p50 {statistics.median(timings):.2f} ms"
              f", p95 {quantiles[94]:.2f} ms, max {max(timings):.2f} ms (target p95 < 20 ms)")

        for label in ("first run (insert)", "second run (replace)"):
            elapsed, done, steps = _score_all(version)
            split = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items())
            print(f"batch scoring, {label}: {done} videos in {elapsed:.2f} s = {done / elapsed:,.0f} videos/s "
                  f"(target ≥ 20,000); {split}; rest (video query, checksums, forward pass, progress) "
                  f"{elapsed - sum(steps.values()):.2f} s")
        assert Prediction.objects.filter(model_version=version).count() == args.videos


if __name__ == "__main__":
    main()
