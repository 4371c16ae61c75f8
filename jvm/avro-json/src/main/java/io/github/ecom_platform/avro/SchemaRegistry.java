package io.github.ecom_platform.avro;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.spark.TaskContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writer schemas by id from a Confluent-compatible schema registry ({@code GET
 * {base}/schemas/ids/{id}}), cached per JVM.
 *
 * <p>An id names one schema forever, so a schema once fetched is kept for the life of the JVM. A
 * 404 is kept for {@link #NOT_FOUND_TTL_NANOS} only: a producer may register the schema just after
 * its first record was read. When the registry does not answer (refused, timed out, a 5xx or any
 * other unexpected status) the lookup waits and asks again, for as long as it takes: guessing would
 * turn every Avro record into a dead letter during a registry restart, and the Kafka offsets are
 * only committed once the batch is done, so waiting loses nothing.
 */
final class SchemaRegistry {
  private static final Logger LOG = LoggerFactory.getLogger(ConfluentAvroToJson.class);

  static final long NOT_FOUND_TTL_NANOS = Duration.ofSeconds(10).toNanos();
  static final Duration TIMEOUT = Duration.ofSeconds(5);
  static final long FIRST_WAIT_MS = 1_000;
  static final long LONGEST_WAIT_MS = 10_000;
  // How often a waiting lookup looks whether Spark killed its task (a stopped query).
  private static final long KILL_POLL_MS = 200;

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<String, Lookup> FOUND = new ConcurrentHashMap<>();
  private static final Map<String, Long> NOT_FOUND_UNTIL = new ConcurrentHashMap<>();
  private static volatile HttpClient client;

  private SchemaRegistry() {}

  /**
   * What the registry holds under one id: a parsed schema, or why there is none to use ({@code
   * unknown}: the registry answered 404; {@code unusable}: its text is not an Avro schema).
   */
  static final class Lookup {
    final Schema schema;
    final boolean unknown;
    final String unusable;

    private Lookup(Schema schema, boolean unknown, String unusable) {
      this.schema = schema;
      this.unknown = unknown;
      this.unusable = unusable;
    }

    static final Lookup UNKNOWN = new Lookup(null, true, null);
  }

  /**
   * The writer schema {@code id} of the registry at {@code baseUrl}; blocks while the registry does
   * not answer. Throws a RuntimeException when the waiting thread is interrupted or its Spark task
   * killed.
   */
  static Lookup lookup(String baseUrl, int id) {
    String key = baseUrl + '\u0000' + id;
    Lookup found = FOUND.get(key);
    if (found != null) {
      return found;
    }
    Long until = NOT_FOUND_UNTIL.get(key);
    if (until != null) {
      if (System.nanoTime() - until < 0) {
        return Lookup.UNKNOWN;
      }
      NOT_FOUND_UNTIL.remove(key, until);
    }
    Lookup fetched = fetchUntilAnswered(baseUrl, id);
    if (fetched.unknown) {
      NOT_FOUND_UNTIL.put(key, System.nanoTime() + NOT_FOUND_TTL_NANOS);
    } else {
      FOUND.putIfAbsent(key, fetched);
    }
    return fetched;
  }

  private static Lookup fetchUntilAnswered(String baseUrl, int id) {
    String base = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
    URI uri = URI.create(base + "/schemas/ids/" + id);
    HttpRequest request =
        HttpRequest.newBuilder(uri)
            .timeout(TIMEOUT)
            .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
            .GET()
            .build();
    long waitMs = FIRST_WAIT_MS;
    boolean warned = false;
    while (true) {
      String problem;
      try {
        HttpResponse<String> response =
            httpClient().send(request, HttpResponse.BodyHandlers.ofString());
        int status = response.statusCode();
        if (status == 200) {
          Lookup answer = parse(response.body(), id);
          if (answer != null) {
            if (warned) {
              LOG.info("schema registry {} answered again for schema id {}", base, id);
            }
            return answer;
          }
          problem = "HTTP 200 without a \"schema\" text in its body";
        } else if (status == 404 && isRegistryNotFound(response.body())) {
          return Lookup.UNKNOWN;
        } else if (status == 404) {
          // A 404 without a registry's error code is a URL that names no registry API (a
          // wrong path in [registry] url): calling every id unknown would dead-letter every
          // Avro record.
          problem =
              "HTTP 404 without a registry error code: is the URL the registry's"
                  + " Confluent-compatible API root (for Apicurio .../apis/ccompat/v7)?";
        } else {
          problem = "HTTP " + status;
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw stopped(base, id);
      } catch (HttpTimeoutException e) {
        problem = "no answer within " + TIMEOUT.toSeconds() + " s";
      } catch (IOException | RuntimeException e) {
        problem = describe(e);
      }
      LOG.warn(
          "schema registry {} did not answer for schema id {} ({}); retrying in {} s — the batch"
              + " waits, no record is skipped",
          base,
          id,
          problem,
          waitMs / 1000);
      warned = true;
      sleep(waitMs, base, id);
      waitMs = Math.min(waitMs * 2, LONGEST_WAIT_MS);
    }
  }

  /**
   * Whether a 404's body is a Confluent-compatible registry's "not found" (error codes 404xx:
   * 40403 schema not found), rather than a server's answer for a path it does not serve.
   */
  private static boolean isRegistryNotFound(String body) {
    try {
      int code = JSON.readTree(body).path("error_code").asInt(0);
      return code / 100 == 404;
    } catch (IOException e) {
      return false;
    }
  }

  /** The lookup of a 200 answer, or null when its body is not a registry's answer. */
  private static Lookup parse(String body, int id) {
    JsonNode answer;
    try {
      answer = JSON.readTree(body);
    } catch (IOException e) {
      return null;
    }
    JsonNode text = answer == null ? null : answer.get("schema");
    if (text == null || !text.isTextual()) {
      return null;
    }
    JsonNode type = answer.get("schemaType");
    if (type != null && type.isTextual() && !"AVRO".equalsIgnoreCase(type.asText())) {
      return new Lookup(null, false, "schema id " + id + " is a " + type.asText() + " schema");
    }
    try {
      // A new parser per schema: a parser remembers the names it defined.
      return new Lookup(new Schema.Parser().parse(text.asText()), false, null);
    } catch (RuntimeException e) {
      return new Lookup(null, false, "schema id " + id + " does not parse: " + e.getMessage());
    }
  }

  private static HttpClient httpClient() {
    HttpClient c = client;
    if (c == null) {
      synchronized (SchemaRegistry.class) {
        c = client;
        if (c == null) {
          c =
              HttpClient.newBuilder()
                  .connectTimeout(TIMEOUT)
                  // Plain HTTP/1.1: no h2c upgrade offer on each request to a plain-HTTP registry.
                  .version(HttpClient.Version.HTTP_1_1)
                  .build();
          client = c;
        }
      }
    }
    return c;
  }

  /**
   * Wait in short slices, so that a Spark task killed without a thread interrupt (a job cancelled
   * without interruptOnCancel) stops waiting too.
   */
  private static void sleep(long ms, String base, int id) {
    long end = System.nanoTime() + ms * 1_000_000L;
    while (true) {
      TaskContext task = TaskContext.get();
      if (task != null && task.isInterrupted()) {
        throw stopped(base, id);
      }
      long left = (end - System.nanoTime()) / 1_000_000L;
      if (left <= 0) {
        return;
      }
      try {
        Thread.sleep(Math.min(left, KILL_POLL_MS));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw stopped(base, id);
      }
    }
  }

  private static RuntimeException stopped(String base, int id) {
    return new RuntimeException(
        "stopped waiting for schema registry " + base + " (schema id " + id + "): the task was"
            + " interrupted");
  }

  /** The first message in the cause chain (HttpClient's ConnectException often has none). */
  static String describe(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      String message = t.getMessage();
      if (message != null && !message.isBlank()) {
        return message;
      }
      if (t.getCause() == t) {
        break;
      }
    }
    // HttpClient's ConnectException carries no message when nothing listens on the port.
    return e instanceof ConnectException ? "Connection refused" : e.getClass().getSimpleName();
  }
}
