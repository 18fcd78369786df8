"""txl: the Transformer-XL purchase predictor (``model.py``) and its streaming scorer (``streaming.py``)."""

from deepromo.models.txl.model import TransformerXLPurchase

__all__ = ["TransformerXLPurchase"]
