"""Datasets: generated (tishby12), from files (mat), and splits."""

from ibjax.data.matfile import load_mat
from ibjax.data.split import idnns_split, make_split, stratified_split
from ibjax.data.tishby12 import all_patterns, icosahedral_labels, tishby12

__all__ = [
    "all_patterns",
    "icosahedral_labels",
    "idnns_split",
    "load_mat",
    "make_split",
    "stratified_split",
    "tishby12",
]
