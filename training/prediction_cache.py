"""The model versions this process serves: weights loaded once per process and kept by
version id, and "the production version of model X" resolved on every request with one
indexed query (``registry_selectors.production_version_id``), so that a promotion is
served from the next request on, without a restart.

A version's weights, threshold, embedding model and text template never change once it
is registered (only its stage, description and lock counter do), so a loaded version
stays valid for as long as its row exists; what changes is which version a model's
production stage points at, and that is what each request asks the database.

Thread-safe: gunicorn threads and Celery's thread pool share one cache per process. A
version is loaded by one thread while others asking for it wait for that load (never
two loads of one version); the cache keeps the ``MAX_CACHED_VERSIONS`` most recently
used versions (a process that serves many versions does not keep them all in memory).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from datasets.models import EmbeddingModel
from datasets.text_composition import TEXT_TEMPLATE_VERSION
from training import registry_selectors
from training.models import ModelStage, ModelVersion, RegisteredModel
from training.served_models import LoadedClassifier, WeightsFileError, load_classifier

MAX_CACHED_VERSIONS = 8
#: Models named in the error when several have a production version and none was named.
SHOWN_MODEL_NAMES = 10

Loader = Callable[..., LoadedClassifier]


@dataclass(frozen=True)
class ServedVersion:
    """A model version ready to score: its classifier and what scoring needs to know."""

    version_id: int
    model_id: int
    model_name: str
    number: int
    threshold: float
    embedding_model: EmbeddingModel
    text_template_version: str
    classifier: LoadedClassifier

    @property
    def input_dimensions(self) -> int:
        return self.classifier.input_dimensions


class PredictionCache:
    """Served versions by id (LRU) and registered model ids by name."""

    def __init__(self, *, max_versions: int = MAX_CACHED_VERSIONS, loader: Loader = load_classifier) -> None:
        self.max_versions = max_versions
        self.loader = loader
        self._lock = threading.Lock()
        self._load_locks: dict[int, threading.Lock] = {}
        self._versions: OrderedDict[int, ServedVersion] = OrderedDict()
        self._model_ids: dict[str, int] = {}
        #: How many weights files this cache has loaded (tests: "once per process").
        self.loads = 0

    def clear(self) -> None:
        with self._lock:
            self._versions.clear()
            self._model_ids.clear()
            self._load_locks.clear()

    # --- versions by id -------------------------------------------------------------

    def served(self, version_id: int) -> ServedVersion:
        """The version ``version_id``, loaded on first use (its row: one query; its
        weights checked against the SHA-256 recorded at registration). Raises
        ``ValidationError`` (``version``) for an unknown or unservable version and
        ``WeightsFileError`` when its weights file is missing or changed."""
        cached = self._cached(version_id)
        if cached is not None:
            return cached
        with self._lock:
            load_lock = self._load_locks.setdefault(version_id, threading.Lock())
        with load_lock:
            cached = self._cached(version_id)  # loaded by another thread meanwhile
            if cached is not None:
                return cached
            served = self._load(version_id)
            with self._lock:
                self._versions[version_id] = served
                while len(self._versions) > self.max_versions:
                    evicted, _ = self._versions.popitem(last=False)
                    self._load_locks.pop(evicted, None)
            return served

    def _cached(self, version_id: int) -> ServedVersion | None:
        with self._lock:
            served = self._versions.get(version_id)
            if served is not None:
                self._versions.move_to_end(version_id)
            return served

    def _load(self, version_id: int) -> ServedVersion:
        version = (
            ModelVersion.objects.select_related("registered_model", "embedding_model", "run__dataset_version")
            .filter(pk=version_id).first()
        )
        if version is None:
            raise ValidationError({"version": f"model version {version_id} does not exist"})
        template = version.run.dataset_version.text_template_version
        if template != TEXT_TEMPLATE_VERSION:
            raise ValidationError({"version": f"model version {version_id} was trained on texts of template "
                                              f"{template!r}; this server composes {TEXT_TEMPLATE_VERSION!r}"})
        path: Path = registry_selectors.version_weights_path(version)
        classifier = self.loader(path, expected_sha256=version.weights_sha256 or None)
        self.loads += 1
        if classifier.input_dimensions != version.input_dimensions:
            raise WeightsFileError(f"the weights of model version {version_id} take {classifier.input_dimensions} "
                                   f"dimensions, the version says {version.input_dimensions}")
        if version.embedding_model.dimensions != version.input_dimensions:
            raise ValidationError({"version": f"model version {version_id} takes {version.input_dimensions}-"
                                              f"dimension vectors but its embedding model "
                                              f"{version.embedding_model.key!r} makes "
                                              f"{version.embedding_model.dimensions}"})
        return ServedVersion(
            version_id=version.pk, model_id=version.registered_model_id, model_name=version.registered_model.name,
            number=version.number, threshold=version.threshold, embedding_model=version.embedding_model,
            text_template_version=template, classifier=classifier,
        )

    # --- the production version of a model ------------------------------------------

    def production(self, model_name: str | None = None) -> ServedVersion:
        """The production version of the model named ``model_name``, or without a name
        of the only model that has one: one indexed query per call (two the first time
        a name is seen), plus the load of a version not served before. Raises
        ``ValidationError`` (``model``) when there is no such model or no production
        version, or (no name) several models have one."""
        if model_name is None:
            return self.served(_only_production_version_id())
        model_id = self._model_id(model_name)
        version_id = registry_selectors.production_version_id(model_id)
        if version_id is None:
            # The name may now belong to another model (deleted and created again).
            self._forget_model(model_name)
            model_id = self._model_id(model_name)
            version_id = registry_selectors.production_version_id(model_id)
        if version_id is None:
            raise ValidationError({"model": f"model {model_name!r} has no production version: name a version"})
        return self.served(version_id)

    def _model_id(self, name: str) -> int:
        with self._lock:
            model_id = self._model_ids.get(name)
        if model_id is not None:
            return model_id
        model_id = RegisteredModel.objects.filter(name=name).values_list("pk", flat=True).first()
        if model_id is None:
            raise ValidationError({"model": f"no registered model is named {name!r}"})
        with self._lock:
            self._model_ids[name] = model_id
        return model_id

    def _forget_model(self, name: str) -> None:
        with self._lock:
            self._model_ids.pop(name, None)


def _only_production_version_id() -> int:
    """The production version of the only model that has one (one query on the partial
    index of production versions)."""
    rows = list(
        ModelVersion.objects.filter(stage=ModelStage.PRODUCTION)
        .order_by("registered_model__name").values_list("pk", "registered_model__name")[:SHOWN_MODEL_NAMES + 1]
    )
    if not rows:
        raise ValidationError({"model": "no model has a production version: promote one, or name a version"})
    if len(rows) > 1:
        names = ", ".join(name for _, name in rows[:SHOWN_MODEL_NAMES]) + (", …" if len(rows) > SHOWN_MODEL_NAMES else "")
        raise ValidationError({"model": f"several models have a production version ({names}): name one"})
    return rows[0][0]


#: The process's cache (module level: one per gunicorn worker or Celery worker process).
prediction_cache = PredictionCache()
