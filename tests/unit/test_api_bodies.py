"""reco_api without a server or Redis: bodies match the OpenAPI models they are documented
by, ETag comparison, titles, CORS settings and the command line's refusal of secrets."""

import pytest

from reco_api import bodies
from reco_api.app import STATIC
from reco_api.server import cors_origins, load_titles, main
from reco_client import Neighbor, RecommendedItem, Recommendations, SimilarItems, Trending, TrendingItem

TITLES = {7: "Heat (1995)"}
OWN = Recommendations(42, (RecommendedItem(7, 0.8, "because you liked Casino (1995)"),
                           RecommendedItem(9, 0.5, "close to your taste")), 3, 900, 1_000, 5)
FALLBACK = Recommendations(43, (RecommendedItem(7, 12.0, "trending now"),), 6_000, 6_000, None, 0, fallback=True)
SIMILAR = SimilarItems(7, (Neighbor(8, 0.5, 2.0),), 3.0, 5_000, 5_000)
TOP = Trending((TrendingItem(7, 12.0), TrendingItem(8, 4.0)), 6_000, 6_000)


@pytest.mark.parametrize("body, model", [
    (bodies.user_body(OWN, TITLES), bodies.UserRecommendations),
    (bodies.user_body(FALLBACK, TITLES), bodies.UserRecommendations),
    (bodies.similar_body(SIMILAR, TITLES), bodies.SimilarItems),
    (bodies.trending_body(TOP, TITLES), bodies.TrendingList),
])
def test_each_body_is_exactly_what_its_openapi_model_describes(body, model):
    assert model.model_validate(body).model_dump() == body


def test_bodies_carry_titles_when_known():
    body = bodies.user_body(OWN, TITLES)
    assert [i["title"] for i in body["items"]] == ["Heat (1995)", None]
    assert bodies.similar_body(SIMILAR, TITLES)["title"] == "Heat (1995)"


def test_etags_name_the_kind_so_a_fallback_never_matches_a_users_own_list():
    own_at_trendings_version = Recommendations(43, (), 6_000, 6_000, 1, 0)
    assert bodies.user_etag(own_at_trendings_version) == '"user-6000"'
    assert bodies.user_etag(FALLBACK) == '"fallback-6000"'
    assert bodies.trending_etag(TOP) == '"trending-6000"'
    assert bodies.similar_etag(SIMILAR) == '"similar-5000"'


@pytest.mark.parametrize("header, match", [
    (None, False), ("", False), ('"user-3"', True), ('W/"user-3"', True), ('"user-2", "user-3"', True),
    ("*", True), ('"user-33"', False), ("user-3", False), ('"fallback-3"', False)])
def test_if_none_match(header, match):
    assert bodies.etag_matches(header, '"user-3"') is match


def test_titles_from_movielens_or_an_item_id_column(tmp_path):
    movies = tmp_path / "movies.csv"
    movies.write_text('movieId,title,genres\n1,Toy Story (1995),Animation\n6,"Heat, the (1995)",Action\n')
    assert load_titles(movies) == {1: "Toy Story (1995)", 6: "Heat, the (1995)"}
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n7,Seven\n")
    assert load_titles(items) == {7: "Seven"}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,x\n")
    with pytest.raises(ValueError, match="item_id"):
        load_titles(bad)


def test_cors_origins_from_flags_else_the_environment():
    env = {"RECO_API_CORS_ORIGINS": " https://a.example, ,https://b.example "}
    assert cors_origins(None, env) == ["https://a.example", "https://b.example"]
    assert cors_origins(["https://c.example"], env) == ["https://c.example"]
    assert cors_origins(None, {}) == []


def test_a_password_on_the_command_line_is_refused_without_being_shown(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--redis-url", "redis://reco:s3cret@127.0.0.1:6379/0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err and "RECO_REDIS_URL" in err


def test_the_page_fetches_nothing_from_elsewhere():
    for name in ("index.html", "app.js", "style.css"):   # no CDN, no external font: the machine has no internet
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
