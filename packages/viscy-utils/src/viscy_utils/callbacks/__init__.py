"""Lightning callbacks."""

from viscy_utils.callbacks.embedding_writer import EmbeddingWriter
from viscy_utils.callbacks.online_eval import OnlineEvalCallback

__all__ = ["EmbeddingWriter", "OnlineEvalCallback"]
