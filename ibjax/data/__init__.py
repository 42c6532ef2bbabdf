"""Datasets: generated (tishby12), from files (mat), splits, and the task on device (task.py)."""

from ibjax.data.matfile import DataError, load_mat
from ibjax.data.split import idnns_split, make_split, stratified_split
from ibjax.data.task import Data, Task, load_task
from ibjax.data.tishby12 import all_patterns, icosahedral_labels, tishby12

__all__ = [
    "DataError",
    "Data",
    "Task",
    "all_patterns",
    "icosahedral_labels",
    "idnns_split",
    "load_mat",
    "load_task",
    "make_split",
    "stratified_split",
    "tishby12",
]
