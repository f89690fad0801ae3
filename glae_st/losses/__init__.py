from glae_st.losses.autoregembed import ConditionalAlignmentLoss
from glae_st.losses.bounded_context import BoundedContextLoss
from glae_st.losses.glae import GLAELoss, with_teacher_embeddings

__all__ = ["BoundedContextLoss", "ConditionalAlignmentLoss", "GLAELoss", "with_teacher_embeddings"]
