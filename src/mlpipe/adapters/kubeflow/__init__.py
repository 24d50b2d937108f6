"""Kubeflow Pipelines (kfp v2) adapter: core's plan as kfp components (``compiler``), container
components in cluster mode (``cluster``) and the ``kubeflow`` runner on ``kfp.local``
(``runner``). Import from those modules: component bodies import ``task``, which must not pull in
kfp's compiler."""
