"""Benchmark: load a 100k × 1024 dataset version into memory and train on it.

Run: .venv/bin/python -m bench.training [--rows 100000] [--dimensions 1024] [--epochs 3]

Uses its own database (cvsa_bench_training) on the embedded server of ``CVSA_DATA_DIR``;
the dev data is untouched. It seeds a READY dataset version in seconds with binary COPY
(videos, pgvector embeddings, version items): two Gaussian clusters of random vectors
(fixed seed), 80/10/10 train/val/test. Then it prints, with the ratio to a bare baseline
measured in the same process (alternating, median of ``--repeats``):

- load: ``datasets.selectors.dataset_version_arrays`` (COPY + parse into numpy arrays)
  beside the same ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)`` read into one
  in-memory buffer with psycopg and nothing else. Target ratio ≤ 1.2.
- train: the median ``EpochMetrics.epoch_seconds`` of ``training.trainer.train`` (MLP,
  batch 256) beside a bare torch loop over the same train tensors (same model shape,
  optimiser, batch size and determinism switch; index slices of a per-epoch
  permutation; the loss summed on the device and read once per epoch). The trainer is
  timed on the version without its val rows so that its epoch is the training pass
  only, like the bare loop's; the epoch with the per-epoch val evaluation (what a run
  logs) is printed beside it for information. Target ratio ≤ 1.1.
- the same training comparison on CUDA when ``torch.cuda.is_available()``.

It is a benchmark, not a test: it prints numbers and exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import bench_embedding_model, embedding_rows_payload, setup_django, videos_copy  # noqa: E402

BENCH_DATABASE = "cvsa_bench_training"
MODEL_KEY = "bench-random"


# --- seeding --------------------------------------------------------------------------


def _clusters(rows: int, dimensions: int, seed: int, separation: float):
    """Two Gaussian clusters ±``separation`` apart along a random unit direction (30% positives)."""
    import numpy as np

    generator = np.random.default_rng(seed)
    y = (generator.random(rows) < 0.3).astype(np.int8)
    X = generator.standard_normal((rows, dimensions), dtype=np.float32)
    direction = generator.standard_normal(dimensions).astype(np.float32)
    direction /= np.linalg.norm(direction)
    X += np.where(y[:, None] == 1, separation, -separation).astype(np.float32) * direction
    split_codes = np.zeros(rows, dtype=np.int8)  # 0 train, 1 val, 2 test
    order = generator.permutation(rows)
    split_codes[order[int(rows * 0.8):int(rows * 0.9)]] = 1
    split_codes[order[int(rows * 0.9):]] = 2
    return X, y, split_codes


def _seed_version(rows: int, dimensions: int, seed: int, separation: float) -> str:
    """A READY version of ``rows`` members (the bench tables emptied first); its id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from core import pgcopy
    from datasets.models import Dataset, DatasetVersion, DatasetVersionStatus

    X, y, split_codes = _clusters(rows, dimensions, seed, separation)
    split_names = ("train", "val", "test")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE datasets_datasetversionitem, datasets_datasetversion, datasets_dataset, "
                "datasets_embedding, labeling_video RESTART IDENTITY CASCADE"
            )
        model = bench_embedding_model(MODEL_KEY, dimensions, name="bench-random")
        with connection.cursor() as cursor:
            videos_copy(cursor, ((f"bench video {n}", "", "") for n in range(1, rows + 1)))
        checksums = [hashlib.sha256(f"bench text {n}".encode()).hexdigest() for n in range(1, rows + 1)]
        pgcopy.copy_in(
            "COPY datasets_embedding (id, model_id, checksum, dimensions, vector, created_at) FROM STDIN (FORMAT BINARY)",
            embedding_rows_payload(model.pk, checksums, X),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval('datasets_embedding_id_seq', %s)", [rows])

        counts = {name: int((split_codes == code).sum()) for code, name in enumerate(split_names)}
        split_counts = {
            name: {"total": counts[name], "positives": int(y[split_codes == code].sum()),
                   "negatives": counts[name] - int(y[split_codes == code].sum())}
            for code, name in enumerate(split_names)
        }
        content = hashlib.sha256()
        content.update(f"{MODEL_KEY}\t{dimensions}\tbench\n".encode())
        for n in range(rows):
            content.update(f"{100_000_001 + n}\t{checksums[n]}\t{int(y[n])}\t{split_names[split_codes[n]]}\n".encode())
        version = DatasetVersion.objects.create(
            dataset=Dataset.objects.create(name="bench-training"),
            number=1,
            description=f"bench: {rows} random {dimensions}-d vectors in two clusters (seed {seed})",
            embedding_model=model,
            embedding_dimensions=dimensions,
            selection={"strategy": "bench"},
            text_template_version="bench",
            train_ratio=0.8, val_ratio=0.1, test_ratio=0.1, seed=seed,
            status=DatasetVersionStatus.READY,
            total_records=rows, positives=int(y.sum()), negatives=rows - int(y.sum()),
            train_count=counts["train"], val_count=counts["val"], test_count=counts["test"],
            split_counts=split_counts, new_embeddings=rows,
            content_hash=content.hexdigest(), frozen_at=timezone.now(),
        )
        item_rows = io.StringIO()
        for n in range(rows):
            item_rows.write(f"{version.pk}\t{n + 1}\t{n + 1}\t{'t' if y[n] else 'f'}\t{split_names[split_codes[n]]}\tf\n")
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY datasets_datasetversionitem (version_id, video_id, embedding_id, label, split, is_inconsistent) "
                "FROM STDIN"
            ) as copy:
                copy.write(item_rows.getvalue())
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE labeling_video, datasets_embedding, datasets_datasetversionitem")
    return str(version.pk)


# --- load -----------------------------------------------------------------------------


def _raw_copy_bytes(sql: str) -> bytearray:
    """The baseline: the COPY stream into one buffer with psycopg, nothing else."""
    from django.db import connection

    with connection.cursor() as cursor:
        buffer = bytearray()
        with cursor.cursor.copy(sql) as copy:
            for data in copy:
                buffer += data
    return buffer


def _member_copy_sql(version_id: str) -> str:
    """The statement ``version_arrays`` runs (captured, so both sides read the same rows)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from datasets.selectors import dataset_version_arrays

    with CaptureQueriesContext(connection) as queries:
        dataset_version_arrays(version_id)
    return next(query["sql"] for query in queries.captured_queries if query["sql"].startswith("COPY"))


def _backend_cpu_seconds(backend_pid: int) -> float | None:
    """CPU time (user + system) of the PostgreSQL backend serving this connection, when
    the embedded server runs on this machine and /proc says so."""
    try:
        fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(operation, backend_pid: int) -> tuple[float, float, float | None]:
    """(wall seconds, this process's CPU seconds, the backend's CPU seconds) of ``operation()``."""
    backend_before = _backend_cpu_seconds(backend_pid)
    cpu_before, started = time.process_time(), time.perf_counter()
    operation()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    backend_after = _backend_cpu_seconds(backend_pid)
    backend = None if backend_before is None or backend_after is None else backend_after - backend_before
    return wall, cpu, backend


def _bench_load(version_id: str, repeats: int) -> None:
    from django.db import connection

    from datasets.selectors import dataset_version_arrays

    sql = _member_copy_sql(version_id)  # also the warm-up read of both sides
    stream_bytes = len(_raw_copy_bytes(sql))
    arrays = dataset_version_arrays(version_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    raw_runs, selector_runs = [], []
    for _ in range(repeats):
        raw_runs.append(_timed(lambda: _raw_copy_bytes(sql), backend_pid))
        selector_runs.append(_timed(lambda: dataset_version_arrays(version_id), backend_pid))
    rows = len(arrays.y)
    megabytes = stream_bytes / 1e6
    print(f"\nLOAD {rows:,} × {arrays.X.shape[1]} float32 (COPY stream {megabytes:,.0f} MB, "
          f"X {arrays.X.nbytes / 1e6:,.0f} MB); median of {repeats}, alternating")
    print(f"  {'':30} {'wall s':>7} {'rows/s':>9} {'MB/s':>6} {'client CPU s':>13} {'server CPU s':>13}")
    medians = {}
    for name, runs in (("raw COPY bytes (psycopg)", raw_runs), ("dataset_version_arrays", selector_runs)):
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        backend = [run[2] for run in runs if run[2] is not None]
        server = f"{statistics.median(backend):13.3f}" if backend else f"{'n/a':>13}"
        medians[name] = (wall, cpu)
        print(f"  {name:30} {wall:7.3f} {rows / wall:9,.0f} {megabytes / wall:6,.0f} {cpu:13.3f} {server}")
    (raw_wall, raw_cpu), (selector_wall, selector_cpu) = medians.values()
    ratio = selector_wall / raw_wall
    verdict = "OK" if ratio <= 1.2 else "OVER TARGET"
    print(f"  ratio {ratio:.3f} wall (target ≤ 1.2: {verdict}), {selector_cpu / raw_cpu:.3f} client CPU; "
          f"all wall runs: raw {_seconds(run[0] for run in raw_runs)}, "
          f"selector {_seconds(run[0] for run in selector_runs)}")


def _seconds(values) -> str:
    values = list(values)
    return "[" + ", ".join(f"{value:.3f}" for value in values) + "]"


# --- training ---------------------------------------------------------------------------


def _bare_epochs(X_train, y_train, config, device, epochs: int) -> list[tuple[float, float]]:
    """The baseline loop: the same model, optimiser and batches, nothing else; (wall, CPU)
    seconds per epoch, timed like the trainer's ``epoch_seconds`` (first batch to the
    epoch's loss read back)."""
    import torch
    from torch.nn import functional

    from training.trainer import _optimizer, _seed_everything

    deterministic = device.type == "cpu"
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        _seed_everything(config["seed"])
        X = torch.from_numpy(X_train).to(device)
        y = torch.from_numpy(y_train.astype("float32")).to(device)
        model = config.build_model(X.shape[1]).to(device)
        optimizer = _optimizer(config, model)
        shuffle = torch.Generator().manual_seed(config["seed"])
        rows, batch_size = len(y), config["batch_size"]
        times = []
        for _ in range(epochs):
            started, cpu_started = time.perf_counter(), time.process_time()
            model.train()
            order = torch.randperm(rows, generator=shuffle).to(device)
            loss_sum = torch.zeros((), device=device)
            for start in range(0, rows, batch_size):
                index = order[start:start + batch_size]
                loss = functional.binary_cross_entropy_with_logits(model(X[index]), y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(index)
            loss_sum.item()
            times.append((time.perf_counter() - started, time.process_time() - cpu_started))
        return times
    finally:
        torch.use_deterministic_algorithms(previous)


class _RecordingClock:
    """The trainer's ``clock`` (wall seconds) that also notes this process's CPU time at
    every reading, so that each ``epoch_seconds`` can be matched with its CPU seconds.

    CUDA work is asynchronous: there the CPU column is the host's time only."""

    def __init__(self) -> None:
        self.readings: list[tuple[float, float]] = []

    def __call__(self) -> float:
        reading = (time.perf_counter(), time.process_time())
        self.readings.append(reading)
        return reading[0]

    def epoch(self, wall_seconds: float) -> tuple[float, float]:
        """(wall, CPU) seconds of the interval the trainer reported as ``wall_seconds``."""
        for (wall_start, cpu_start), (wall_end, cpu_end) in zip(self.readings, self.readings[1:]):
            if wall_end - wall_start == wall_seconds:
                return wall_seconds, cpu_end - cpu_start
        return wall_seconds, float("nan")


def _bench_train(arrays, device_name: str, args) -> None:
    import numpy as np
    import torch

    from training.architectures import resolve_config
    from training.trainer import TrainingArrays, train

    device = torch.device(device_name)
    config = resolve_config("mlp", {
        "batch_size": args.batch_size, "epochs": args.epochs, "early_stopping_patience": 0, "seed": 0,
    })
    without_val = arrays.splits != "val"
    train_only = TrainingArrays(X=arrays.X[without_val], y=arrays.y[without_val], splits=arrays.splits[without_val])
    train_mask = arrays.splits == "train"
    X_train, y_train = np.ascontiguousarray(arrays.X[train_mask]), arrays.y[train_mask]
    rows = len(y_train)

    trainer_epochs, bare_epochs = [], []
    for _ in range(args.repeats):
        clock = _RecordingClock()
        history = train(train_only, config, device=device, clock=clock).history
        trainer_epochs += [clock.epoch(record.epoch_seconds) for record in history]
        bare_epochs += _bare_epochs(X_train, y_train, config, device, args.epochs)
    clock = _RecordingClock()
    result = train(arrays, config, device=device, clock=clock)
    with_val_epochs = [clock.epoch(record.epoch_seconds) for record in result.history]

    hidden = ",".join(str(size) for size in config["hidden_sizes"])
    threads = f", {torch.get_num_threads()} torch threads" if device.type == "cpu" else ""
    print(f"\nTRAIN on {device} ({result.device_name}{threads}): MLP {arrays.X.shape[1]}→{hidden}→1, "
          f"{config['optimizer']}, batch {config['batch_size']}, {rows:,} train rows; "
          f"median epoch of {args.repeats} × {args.epochs} epochs, alternating")
    print(f"  {'':44} {'wall s/epoch':>12} {'rows/s':>9} {'CPU s/epoch':>12}")
    medians = {}
    for name, epochs in (("bare torch loop (train pass only)", bare_epochs),
                         ("trainer.train, no val rows (train pass only)", trainer_epochs),
                         ("trainer.train with val evaluation", with_val_epochs)):
        wall, cpu = statistics.median(e[0] for e in epochs), statistics.median(e[1] for e in epochs)
        medians[name] = (wall, cpu)
        print(f"  {name:44} {wall:12.3f} {rows / wall:9,.0f} {cpu:12.3f}")
    (bare, bare_cpu), (trainer, trainer_cpu), _ = medians.values()
    ratio = trainer / bare
    verdict = "OK" if ratio <= 1.1 else "OVER TARGET"
    print(f"  ratio {ratio:.3f} wall (target ≤ 1.1: {verdict}), {trainer_cpu / bare_cpu:.3f} CPU; "
          f"all wall epochs: bare {_seconds(e[0] for e in bare_epochs)}, "
          f"trainer {_seconds(e[0] for e in trainer_epochs)}")
    print(f"  (the epoch with val evaluation adds a pass over {result.split_rows['val']:,} val rows and "
          f"their metrics; it is what a run logs as epoch_seconds)")
    print(f"  sanity: test F1 {result.test.f1:.3f}, ROC-AUC {result.test.roc_auc:.3f} after {result.epochs_run} epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--separation", type=float, default=1.5, help="cluster offset along one direction (σ)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each side")
    args = parser.parse_args()
    setup_django(BENCH_DATABASE)

    import torch

    started = time.perf_counter()
    version_id = _seed_version(args.rows, args.dimensions, args.seed, args.separation)
    print(f"seeded READY version {version_id}: {args.rows:,} × {args.dimensions} "
          f"in {time.perf_counter() - started:.1f} s (binary COPY; database {BENCH_DATABASE})")

    _bench_load(version_id, args.repeats)

    from datasets.selectors import dataset_version_arrays

    arrays = dataset_version_arrays(version_id)
    _bench_train(arrays, "cpu", args)
    if torch.cuda.is_available():
        _bench_train(arrays, "cuda", args)
    else:
        print("\nCUDA: not available")


if __name__ == "__main__":
    main()
