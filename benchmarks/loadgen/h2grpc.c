/*
 * h2grpc: a closed-loop HTTP/2 load generator for unary gRPC calls.
 *
 * Like `h2load -d FILE`, but the request bodies rotate through a pool: FILE holds any number
 * of ready gRPC frames (5-byte header + message) back to back, and request k sends frame
 * k mod N. That is what a pool of 1,000 distinct tokens needs and h2load cannot do.
 * It also reads the `grpc-status` trailer, so a failing RPC is counted as an error (h2load
 * only sees the HTTP status, which is 200 for gRPC errors too), and with --expect the
 * answer itself: `check-allow` / `check-deny` (CheckResponse.status.code 0 / not 0) or
 * `rls-ok` (RateLimitResponse.overall_code OK); any other answer counts as `unexpected`.
 * Throughput (`requests`, `rps`) counts only the answers that are neither errors nor
 * unexpected.
 *
 *   h2grpc --ports 9001[,9002] --path /pkg.Service/Method --data frames.bin
 *          --conns 16 --streams 8 (--duration S [--warmup S] | --requests N)
 *          [--expect check-allow|check-deny|rls-ok]
 *
 * One thread, poll(2) over all connections. Prints one JSON object on stdout.
 * Built by benchmarks/loadgen/build.py (cc -O2 ... -lnghttp2).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  const uint8_t *data;
  size_t len;
} body_t;

typedef struct conn {
  int fd;
  int dead;
  int inflight;
  nghttp2_session *session;
  char authority[64];
  uint8_t *out; /* bytes nghttp2 produced that the socket has not taken yet */
  size_t out_len, out_cap;
} conn_t;

typedef struct {
  conn_t *conn;
  const body_t *body;
  size_t offset;
  double start;
  int http_status;
  int grpc_status;
  uint8_t head[16]; /* the answer's first bytes: gRPC frame header + message start */
  size_t head_len;
} stream_t;

enum expect { EXPECT_NOTHING, EXPECT_CHECK_ALLOW, EXPECT_CHECK_DENY, EXPECT_RLS_OK };
static enum expect expected = EXPECT_NOTHING;

static body_t *bodies;
static size_t nbodies, next_body;
static const char *host = "127.0.0.1";
static const char *path;
static int streams_per_conn = 8;
static int running = 1;
static long long max_requests = -1, submitted;
static double window_start, window_end, last_completion;

static uint32_t *latencies;
static size_t nlat, caplat;
static long long completed_total, completed_window, ok_total, grpc_errors, http_errors,
    stream_errors, unexpected;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "h2grpc: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void load_bodies(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) die(file);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *all = malloc((size_t)size);
  if (fread(all, 1, (size_t)size, f) != (size_t)size) die("short read");
  fclose(f);
  size_t cap = 16;
  bodies = malloc(cap * sizeof *bodies);
  for (size_t at = 0; at + 5 <= (size_t)size;) {
    size_t len = ((size_t)all[at + 1] << 24) | ((size_t)all[at + 2] << 16) |
                 ((size_t)all[at + 3] << 8) | (size_t)all[at + 4];
    if (at + 5 + len > (size_t)size) {
      fprintf(stderr, "h2grpc: truncated frame at byte %zu\n", at);
      exit(2);
    }
    if (nbodies == cap) bodies = realloc(bodies, (cap *= 2) * sizeof *bodies);
    bodies[nbodies].data = all + at;
    bodies[nbodies].len = 5 + len;
    nbodies++;
    at += 5 + len;
  }
  if (nbodies == 0) {
    fprintf(stderr, "h2grpc: no gRPC frames in %s\n", file);
    exit(2);
  }
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
  (void)flags;
  (void)user_data;
  (void)valuelen;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  stream_t *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s) return 0;
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) s->http_status = atoi((const char *)value);
  if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
    s->grpc_status = atoi((const char *)value);
  return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                   const uint8_t *data, size_t len, void *user_data) {
  (void)flags;
  (void)user_data;
  stream_t *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!s) return 0;
  size_t room = sizeof s->head - s->head_len;
  size_t n = len < room ? len : room;
  memcpy(s->head + s->head_len, data, n);
  s->head_len += n;
  return 0;
}

/* A protobuf varint at p (at most end); -1 when cut short. */
static long long varint(const uint8_t *p, const uint8_t *end) {
  long long value = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7, p++) {
    value |= (long long)(*p & 0x7f) << shift;
    if (!(*p & 0x80)) return value;
  }
  return -1;
}

/* Does the answer (its first bytes) say what --expect asks? Field 1 comes first in both. */
static int as_expected(const stream_t *s) {
  if (expected == EXPECT_NOTHING) return 1;
  if (s->head_len < 5) return 0; /* no message at all */
  const uint8_t *msg = s->head + 5, *end = s->head + s->head_len;
  if (expected == EXPECT_RLS_OK) /* overall_code = 1 (OK): field 1, varint */
    return msg + 1 < end && msg[0] == 0x08 && varint(msg + 1, end) == 1;
  long long code = 0; /* CheckResponse.status (field 1) .code (field 1); absent: 0 */
  if (msg < end && msg[0] == 0x0a) {
    const uint8_t *inner = msg + 1;
    while (inner < end && (*inner & 0x80)) inner++; /* past the Status's length */
    inner++;
    if (varint(msg + 1, end) > 0 && inner < end && *inner == 0x08) code = varint(inner + 1, end);
  }
  if (code < 0) return 0;
  return expected == EXPECT_CHECK_ALLOW ? code == 0 : code != 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  (void)user_data;
  stream_t *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!s) return 0;
  double t = now();
  completed_total++;
  last_completion = t;
  if (s->http_status != 200) http_errors++;
  else if (error_code != 0 || s->grpc_status < 0) stream_errors++;
  else if (s->grpc_status != 0) grpc_errors++;
  else if (!as_expected(s)) unexpected++;
  else ok_total++;
  int ok = s->http_status == 200 && error_code == 0 && s->grpc_status == 0 && as_expected(s);
  if (ok && s->start >= window_start && t <= window_end) {
    completed_window++;
    if (nlat == caplat) latencies = realloc(latencies, (caplat = caplat ? caplat * 2 : 65536) * 4);
    double us = (t - s->start) * 1e6;
    latencies[nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
  }
  s->conn->inflight--;
  free(s);
  return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  stream_t *s = source->ptr;
  size_t left = s->body->len - s->offset;
  size_t n = left < length ? left : length;
  memcpy(buf, s->body->data + s->offset, n);
  s->offset += n;
  if (s->offset == s->body->len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

#define NV(NAME, VALUE)                                                                     \
  {                                                                                         \
    (uint8_t *)(NAME), (uint8_t *)(VALUE), strlen(NAME), strlen(VALUE), NGHTTP2_NV_FLAG_NONE \
  }

static int submit(conn_t *c) {
  stream_t *s = calloc(1, sizeof *s);
  s->conn = c;
  s->body = &bodies[next_body++ % nbodies];
  s->grpc_status = -1;
  s->start = now();
  nghttp2_nv headers[] = {
      NV(":method", "POST"),          NV(":scheme", "http"),
      NV(":path", path),              NV(":authority", c->authority),
      NV("content-type", "application/grpc"), NV("te", "trailers"),
  };
  nghttp2_data_provider provider;
  provider.source.ptr = s;
  provider.read_callback = read_body;
  int32_t id = nghttp2_submit_request(c->session, NULL, headers, 6, &provider, s);
  if (id < 0) {
    free(s);
    return -1;
  }
  c->inflight++;
  submitted++;
  return 0;
}

static void open_conn(conn_t *c, int port, nghttp2_session_callbacks *callbacks) {
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("bad host");
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) die("socket");
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  snprintf(c->authority, sizeof c->authority, "%s:%d", host, port);
  nghttp2_session_client_new(&c->session, callbacks, c);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24},
  };
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 1 << 30);
}

/* Everything nghttp2 has to send, appended to one buffer and written with as few send(2)
 * calls as possible: one TCP segment carries many frames, as with h2load. */
static void flush(conn_t *c) {
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0) {
      c->dead = 1;
      return;
    }
    if (n == 0) break;
    if (c->out_len + (size_t)n > c->out_cap) {
      while (c->out_len + (size_t)n > c->out_cap) c->out_cap = c->out_cap ? c->out_cap * 2 : 65536;
      c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, (size_t)n);
    c->out_len += (size_t)n;
  }
  size_t sent = 0;
  while (sent < c->out_len) {
    ssize_t n = send(c->fd, c->out + sent, c->out_len - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c->dead = 1;
      break;
    }
    sent += (size_t)n;
  }
  memmove(c->out, c->out + sent, c->out_len - sent);
  c->out_len -= sent;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t percentile(double q) {
  if (nlat == 0) return 0;
  size_t rank = (size_t)(q * (double)nlat + 0.999999);
  if (rank < 1) rank = 1;
  return latencies[(rank > nlat ? nlat : rank) - 1];
}

int main(int argc, char **argv) {
  const char *data_file = NULL, *ports_arg = NULL;
  int nconns = 16;
  double duration = 0, warmup = 0;
  static struct option options[] = {
      {"host", required_argument, 0, 'h'},   {"ports", required_argument, 0, 'p'},
      {"path", required_argument, 0, 'P'},   {"data", required_argument, 0, 'd'},
      {"conns", required_argument, 0, 'c'},  {"streams", required_argument, 0, 'm'},
      {"duration", required_argument, 0, 'D'}, {"warmup", required_argument, 0, 'w'},
      {"requests", required_argument, 0, 'n'}, {"expect", required_argument, 0, 'e'},
      {0, 0, 0, 0}};
  for (int opt; (opt = getopt_long(argc, argv, "h:p:P:d:c:m:D:w:n:e:", options, NULL)) != -1;) {
    switch (opt) {
      case 'h': host = optarg; break;
      case 'p': ports_arg = optarg; break;
      case 'P': path = optarg; break;
      case 'd': data_file = optarg; break;
      case 'c': nconns = atoi(optarg); break;
      case 'm': streams_per_conn = atoi(optarg); break;
      case 'D': duration = atof(optarg); break;
      case 'w': warmup = atof(optarg); break;
      case 'n': max_requests = atoll(optarg); break;
      case 'e':
        if (strcmp(optarg, "check-allow") == 0) expected = EXPECT_CHECK_ALLOW;
        else if (strcmp(optarg, "check-deny") == 0) expected = EXPECT_CHECK_DENY;
        else if (strcmp(optarg, "rls-ok") == 0) expected = EXPECT_RLS_OK;
        else {
          fprintf(stderr, "h2grpc: --expect check-allow | check-deny | rls-ok\n");
          return 2;
        }
        break;
      default:
        fprintf(stderr, "usage: see the comment at the top of h2grpc.c\n");
        return 2;
    }
  }
  if (!ports_arg || !path || !data_file || nconns < 1 || streams_per_conn < 1 ||
      (duration <= 0 && max_requests <= 0)) {
    fprintf(stderr, "h2grpc: --ports, --path, --data and --duration or --requests are required\n");
    return 2;
  }
  load_bodies(data_file);
  int ports[64], nports = 0;
  for (char *copy = strdup(ports_arg), *tok = strtok(copy, ","); tok && nports < 64;
       tok = strtok(NULL, ","))
    ports[nports++] = atoi(tok);

  nghttp2_session_callbacks *callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data);

  conn_t *conns = calloc((size_t)nconns, sizeof *conns);
  struct pollfd *fds = calloc((size_t)nconns, sizeof *fds);
  for (int i = 0; i < nconns; i++) open_conn(&conns[i], ports[i % nports], callbacks);

  double started = now();
  window_start = started + warmup;
  window_end = duration > 0 ? window_start + duration : 1e300;
  uint8_t buf[65536];
  for (;;) {
    double t = now();
    if ((duration > 0 && t >= window_end) || (max_requests > 0 && submitted >= max_requests))
      running = 0;
    int inflight = 0, alive = 0;
    for (int i = 0; i < nconns; i++) {
      conn_t *c = &conns[i];
      if (c->dead) continue;
      while (running && c->inflight < streams_per_conn &&
             (max_requests <= 0 || submitted < max_requests))
        if (submit(c) != 0) break;
      flush(c);
      inflight += c->inflight;
      alive += !c->dead;
      fds[i].fd = c->dead ? -1 : c->fd;
      fds[i].events = (short)(POLLIN | (c->out_len ? POLLOUT : 0));
      fds[i].revents = 0;
    }
    if (alive == 0 || (!running && inflight == 0) || (!running && t > window_end + 5.0 &&
                                                      duration > 0))
      break;
    if (poll(fds, (nfds_t)nconns, 10) < 0 && errno != EINTR) die("poll");
    for (int i = 0; i < nconns; i++) {
      conn_t *c = &conns[i];
      if (c->dead || !(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
          if (nghttp2_session_mem_recv(c->session, buf, (size_t)n) < 0) {
            c->dead = 1;
            break;
          }
          continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) c->dead = 1;
        break;
      }
    }
  }
  double elapsed = duration > 0 ? duration : last_completion - window_start;
  if (duration <= 0) completed_window = (long long)nlat;
  qsort(latencies, nlat, sizeof *latencies, cmp_u32);
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
               (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
  long long unfinished = submitted - completed_total;
  printf("{\"tool\": \"h2grpc\", \"bodies\": %zu, \"conns\": %d, \"streams\": %d, "
         "\"elapsed_s\": %.3f, \"requests\": %lld, \"rps\": %.1f, \"completed_total\": %lld, "
         "\"ok_total\": %lld, \"grpc_errors\": %lld, \"http_errors\": %lld, "
         "\"stream_errors\": %lld, \"unexpected\": %lld, \"unfinished\": %lld, "
         "\"p50_us\": %u, \"p90_us\": %u, "
         "\"p99_us\": %u, \"max_us\": %u, \"client_cpu_s\": %.3f}\n",
         nbodies, nconns, streams_per_conn, elapsed, completed_window,
         elapsed > 0 ? (double)completed_window / elapsed : 0.0, completed_total, ok_total,
         grpc_errors, http_errors, stream_errors, unexpected, unfinished, percentile(0.50),
         percentile(0.90),
         percentile(0.99), nlat ? latencies[nlat - 1] : 0, cpu);
  return 0;
}
