"""The HTTP read API over the job's Redis lists, and its live page: ``reco-api``.

    reco-api --port 8080 --titles data/ml-latest-small/movies.csv    # RECO_REDIS_URL=...

Every read goes through :class:`reco_client.AsyncRecoClient`, which owns the Redis keys and
the documents' format; this package only maps its results and errors to HTTP.
:func:`reco_api.app.create_app` builds the application (tests, other ASGI servers);
:func:`reco_api.server.main` runs it under uvicorn.
"""
