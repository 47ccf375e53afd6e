"""Green: one pattern per class, where the protein sits; GREEN_PATTERNS lists them in class order."""

from __future__ import annotations

from hpa_utils.dataset.synthetic.green_cytoplasm import (
    green_aggresome,
    green_cytoplasmic_bodies,
    green_cytosol,
    green_endoplasmic_reticulum,
    green_endosomes,
    green_golgi,
    green_lipid_droplets,
    green_lysosomes,
    green_mitochondria,
    green_peroxisomes,
    green_rods_and_rings,
)
from hpa_utils.dataset.synthetic.green_cytoskeleton import (
    green_actin,
    green_cell_junctions,
    green_centrosome,
    green_cytokinetic_bridge,
    green_focal_adhesions,
    green_intermediate_filaments,
    green_microtubule_ends,
    green_microtubules,
    green_mitotic_spindle,
    green_mtoc,
    green_plasma_membrane,
)
from hpa_utils.dataset.synthetic.green_nucleus import (
    green_fibrillar_center,
    green_nuclear_bodies,
    green_nuclear_membrane,
    green_nucleoli,
    green_nucleoplasm,
    green_speckles,
)

GREEN_PATTERNS = (
    green_nucleoplasm,
    green_nuclear_membrane,
    green_nucleoli,
    green_fibrillar_center,
    green_speckles,
    green_nuclear_bodies,
    green_endoplasmic_reticulum,
    green_golgi,
    green_peroxisomes,
    green_endosomes,
    green_lysosomes,
    green_intermediate_filaments,
    green_actin,
    green_focal_adhesions,
    green_microtubules,
    green_microtubule_ends,
    green_cytokinetic_bridge,
    green_mitotic_spindle,
    green_mtoc,
    green_centrosome,
    green_lipid_droplets,
    green_plasma_membrane,
    green_cell_junctions,
    green_mitochondria,
    green_aggresome,
    green_cytosol,
    green_cytoplasmic_bodies,
    green_rods_and_rings,
)
