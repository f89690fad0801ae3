from glae_st.losses.glae import GLAELoss

__all__ = ["GLAELoss"]
