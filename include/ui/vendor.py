"""The CSS and JavaScript of the GX Data Docs, served by the plugin instead of CDNs.

GX Data Docs load their CSS and JavaScript from CDNs; with no internet (or a strict
proxy) the report then renders as bare, unusable HTML.  The plugin serves those same files
itself: ``make setup`` installs them from the npm registry into ``.cache/web`` (versions in
include/ui/vendor/package.json, locked), and :func:`localise` points each CDN address in a
Data Docs page at ``/ecom/vendor/...``.
"""

from __future__ import annotations

import re

from include.settings.base import PROJECT_ROOT

VENDOR_ROOT = PROJECT_ROOT / ".cache" / "web" / "node_modules"

CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"
# CDN address (as GX 1.x writes it) -> file or folder under node_modules.
CDN_FILES: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/": "@forevolve/bootstrap-dark/",
    f"{CDNJS}/bootstrap-datepicker/1.9.0/": "bootstrap-datepicker/dist/",
    f"{CDNJS}/font-awesome/6.6.0/": "@fortawesome/fontawesome-free/",
    f"{CDNJS}/popper.js/1.12.9/": "popper.js/dist/",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/": "bootstrap/dist/",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/": "bootstrap/dist/",
    "https://unpkg.com/bootstrap-table@1.19.0/": "bootstrap-table/",
    "https://unpkg.com/bootstrap-table@1.19.1/": "bootstrap-table/",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
}
# What /ecom/vendor serves: the files and folders above, nothing else of node_modules.
SERVED_VENDOR_PATHS: tuple[str, ...] = tuple(sorted(set(CDN_FILES.values())))
# GX's logo comes from S3 with tracking parameters; the site has its own copy.
REMOTE_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"']*logo-long\.png[^\"']*")


def localise(html: str, prefix: str) -> str:
    """``html`` with every known CDN address replaced by the plugin's own copy."""
    for address in sorted(CDN_FILES, key=len, reverse=True):
        html = html.replace(f'"{address}', f'"{prefix}/vendor/{CDN_FILES[address]}')
    return REMOTE_LOGO.sub(f"{prefix}/quality/docs/static/images/logo-long.png", html)


def remaining_cdn_addresses(html: str) -> list[str]:
    """Script and stylesheet addresses still pointing off-site (a test helper, and a check)."""
    found = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
    return sorted(set(found))
