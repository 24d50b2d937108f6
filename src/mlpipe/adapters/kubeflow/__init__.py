"""Kubeflow Pipelines (kfp v2) adapter: core's plan as kfp components in either mode
(``compiler``) and the ``kubeflow`` runner on ``kfp.local`` (``runner``). Component bodies import
``task`` alone, which must not pull in kfp's compiler."""
