from glae_st.losses.autoregembed import ConditionalAlignmentLoss
from glae_st.losses.glae import GLAELoss

__all__ = ["ConditionalAlignmentLoss", "GLAELoss"]
