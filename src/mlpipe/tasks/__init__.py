"""The tasks mlpipe ships, each a package behind :class:`mlpipe.core.task.Task`.

``text-classification`` (:mod:`mlpipe.tasks.classification`) and ``text-to-sql``
(:mod:`mlpipe.tasks.text_to_sql`) are plugins like any third-party task: entry points in the
``mlpipe.tasks`` group. They import only public names of :mod:`mlpipe.core`, never each other,
and core never imports them.
"""
