"""The face space: operations on descriptors that evaluation and the product share
(unit rows and neighbours, PCA whitening fitted on unlabelled faces, label propagation)."""
