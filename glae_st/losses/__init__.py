from glae_st.losses.autoregembed import ConditionalAlignmentLoss
from glae_st.losses.bounded_context import BoundedContextLoss
from glae_st.losses.glae import GLAELoss

__all__ = ["BoundedContextLoss", "ConditionalAlignmentLoss", "GLAELoss"]
