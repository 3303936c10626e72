# page-dumper for Varnish (VCL 4.1): keeps pages as long as page-dumper says, and purges them by
# tag through xkey (Debian and Ubuntu: apt-get install varnish-modules).
#
# Include it in your VCL and call its subroutines first thing in yours; it declares no backend:
#
#   vcl 4.1;
#   import std;
#   backend default { .host = "127.0.0.1"; .port = "3000"; }
#   include "/path/to/node_modules/page-dumper/varnish/page-dumper.vcl";
#   sub vcl_recv { call page_dumper_recv; }
#   sub vcl_backend_response { call page_dumper_backend_response; }
#   sub vcl_deliver { call page_dumper_deliver; }
#
# Then createDumper({ purgers: [varnishPurger({ url: 'http://127.0.0.1:6081' })] }).
# Purge requests are taken from the addresses in page_dumper_purgers (loopback); to allow your
# application servers, define your own ACL of that name instead of including this one's: copy
# this file and edit the list.

vcl 4.1;

import xkey;
import std;

acl page_dumper_purgers {
  "127.0.0.1";
  "::1";
}

sub page_dumper_recv {
  # PURGE / with "xkey-purge: tag1 tag2 ...": every object carrying any of the tags goes
  # (xkey.purge), or turns stale for its grace time with "xkey-softpurge: 1" (xkey.softpurge).
  if (req.method == "PURGE") {
    if (client.ip !~ page_dumper_purgers) {
      return (synth(403, "Forbidden"));
    }
    if (!req.http.xkey-purge) {
      return (synth(400, "xkey-purge header missing"));
    }
    if (req.http.xkey-softpurge) {
      set req.http.x-page-dumper-purged = xkey.softpurge(req.http.xkey-purge);
    } else {
      set req.http.x-page-dumper-purged = xkey.purge(req.http.xkey-purge);
    }
    return (synth(200, "Purged " + req.http.x-page-dumper-purged));
  }
  # Cookies only the browser's scripts read (analytics, advertising: page-dumper's default
  # ignoreCookies, DEFAULT_IGNORED_COOKIES) are removed, as page-dumper removes them from the
  # request the app renders: a visitor who carries only these is served the cached page, which
  # Varnish's built-in vcl_recv would otherwise pass to the origin for carrying a Cookie. A
  # visitor with any other cookie (a session) still goes to the origin, where page-dumper decides.
  # If your app sets ignoreCookies, make the same list here (in a copy of this file).
  if (req.http.Cookie) {
    set req.http.Cookie = regsuball("; " + req.http.Cookie, ";\s*(_ga|_ga_[^=;]*|_gid|_gat[^=;]*|_gcl_[^=;]*|_fbp|_fbc|_hj[^=;]*|_clck|_clsk|_uetsid|_uetvid|_ttp|__utm[^=;]*|_pk_id[^=;]*|_pk_ses[^=;]*|ajs_anonymous_id|ajs_user_id|mp_[^=;]*|__hstc|__hssc|__hssrc|hubspotutk)=[^;]*", "");
    set req.http.Cookie = regsub(req.http.Cookie, "^[;\s]+", "");
    if (req.http.Cookie == "") {
      unset req.http.Cookie;
    }
  }
}

sub page_dumper_backend_response {
  # page-dumper labels the pages it vouches for with their tags (xkey) and their lifetime at the
  # edge (Surrogate-Control: max-age=N), and sends "no-store" for a page it cannot vouch for. The
  # lifetime is set here explicitly; Cache-Control, which tells browsers to revalidate, is left for
  # them. A response that says nothing about its freshness (no Surrogate-Control, Cache-Control or
  # Expires) is not kept: Varnish's default TTL would keep a page nobody can purge (one rendered
  # while page-dumper bypassed its store, say). Everything else (Set-Cookie, Vary: *) is left to
  # the built-in rules, which run after this. A personal response (Cache-Control private,
  # no-store or no-cache, or a Set-Cookie) is never kept, whatever Surrogate-Control says: the
  # built-in rules read Cache-Control only when there is no Surrogate-Control.
  if (beresp.http.Surrogate-Control ~ "(?i)(^|,)\s*(no-store|private)" ||
      beresp.http.Cache-Control ~ "(?i)(^|,)\s*(private|no-store|no-cache)" ||
      beresp.http.Set-Cookie ||
      (!beresp.http.Surrogate-Control && !beresp.http.Cache-Control && !beresp.http.Expires)) {
    set beresp.uncacheable = true;
    set beresp.ttl = 0s;
  } elsif (beresp.http.xkey && beresp.http.Surrogate-Control ~ "(?i)(^|,)\s*max-age=[0-9]+") {
    set beresp.ttl = std.duration(regsub(beresp.http.Surrogate-Control, "(?i)^.*max-age=([0-9]+).*$", "\1") + "s", 0s);
    # A purged page is gone at once (a hard purge); grace only serves a page whose lifetime ran out.
    set beresp.grace = 10s;
  }
}

sub page_dumper_deliver {
  # The tags and the edge lifetime are for this cache only.
  unset resp.http.xkey;
  unset resp.http.Surrogate-Control;
  if (obj.hits > 0) {
    set resp.http.X-Edge-Cache = "HIT";
  } else {
    set resp.http.X-Edge-Cache = "MISS";
  }
}
