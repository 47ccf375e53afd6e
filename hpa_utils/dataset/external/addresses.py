"""The HPAv18 image server's addresses: where one colour of an image Id lives, relative to the server's base URL.

The pattern of the participants' public download scripts; the downloader reads from it and the embedded dataset's
HPAv18 form (``synthetic.hpav18``) is written in it, so both import it from here.
"""

from __future__ import annotations

from hpa_utils import errors


def server_path(image_id: str, color: str) -> str:
    """Where the v18 image server keeps one colour of ``image_id``, relative to its base URL.

    <plate>/<rest of the Id>_<colour>.jpg, the address pattern of the participants' public download scripts;
    ValueError for an Id that is not <plate>_<image>_<well>_<field>.
    """
    plate, separator, rest = image_id.partition("_")
    if not separator or not rest:
        raise errors.InputError(f"Id {image_id!r} is not an HPAv18 Id (<plate>_<image>_<well>_<field>)")
    return f"{plate}/{rest}_{color}.jpg"
