"""Dataset name -> the lister of its on-disk layout (spd_tf.data.layouts, .ccp, .fashionista).

Apart from layouts so that ccp, which builds on layouts' Listing, is not imported by it.
"""

from spd_tf.data import ccp, fashionista, layouts

LISTERS = {"lip": layouts.list_lip, "atr": layouts.list_atr, "cihp": layouts.list_cihp, "ccp": ccp.list_ccp,
           "fashionista": fashionista.list_fashionista}
