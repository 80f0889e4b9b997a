"""The runs and architectures REST API under ``/api/v1/`` (``views``, ``serializers``, ``urls``).

Same rules as ``experiments.api``: team reads, admin writes, ``{"detail"}`` errors; a
hyperparameter's error is under ``errors.hyperparameters.<name>``.
"""
