"""The demo's stand-in for ImageNet weights: the ``small`` backbone pretrained on a source task without the 28 labels.

``structures`` (the generic task: which of 30 drawn shapes, spots, fibres and textures an image holds), ``fields``
(the first task: six properties of an embedded field that are not its labels) and ``pretrain`` (training one and
writing the notop file with its provenance).
"""
