"""``task: text-to-sql``: fine-tune a causal or seq2seq LM on (question, context, answer) rows."""

from mlpipe.tasks.text_to_sql.task import TextToSqlTask

__all__ = ["TextToSqlTask"]
