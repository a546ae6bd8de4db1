"""A machine without nginx (the embedded default may run on one): the proxy step says what is missing
instead of hanging or answering 500."""

from provisioning.orders import proxy


def test_it_names_the_missing_program_when_nginx_is_not_installed(settings, tmp_path):
    settings.ORDERS_NGINX_BINARY = str(tmp_path / "no-such-nginx")
    settings.ORDERS_NGINX_PREFIX = str(tmp_path / "nginx")
    route = proxy.Route(service_id="web", domains=("shop.example.org",), path="/", port=21001)
    try:
        proxy.apply_site("env1", proxy.render_site("env1", [route], listen="127.0.0.1:18080"))
    except proxy.ProxyError as exc:
        assert "nginx is not installed" in exc.message and "no-such-nginx" in exc.message
        assert "apt-get install nginx" in exc.message
    else:
        raise AssertionError("the routes were applied without nginx")
    assert not proxy.site_path("env1").exists()  # nothing half applied
