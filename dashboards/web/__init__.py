"""The roadpulse web app: operators' and commuters' pages, live events, a DataMall-shaped API, webhooks.

See docs/web.md. Entry points: :class:`~dashboards.web.server.WebContext`,
:class:`~dashboards.web.server.WebServer`, :class:`~dashboards.web.feed.LiveRun`
(the ``on_step`` hook of a served run) and :func:`~dashboards.web.store_source.load_store`.
"""
