"""Self-supervised methods: importing this package registers every method."""

from labelless.methods import (  # noqa: F401  (registration)
    barlow_twins,
    bgrl,
    byol,
    dcl,
    dgi,
    dino,
    directpred,
    distill,
    graph_contrast,
    graphcl,
    graphmae,
    ijepa,
    infograph,
    mae,
    mixed_barlow_twins,
    moco,
    moco_v3,
    nnclr,
    paretognn,
    scarf,
    simclr,
    simsiam,
    swav,
    tjepa,
    ts2vec,
    ts_forecast,
    tstcc,
    vicreg,
    vime,
)
from labelless.methods.base import METHODS, Method, create_method, list_methods, register_method

__all__ = ["METHODS", "Method", "create_method", "list_methods", "register_method"]
