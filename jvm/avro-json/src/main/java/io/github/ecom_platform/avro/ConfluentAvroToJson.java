package io.github.ecom_platform.avro;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.avro.AvroTypeException;
import org.apache.avro.Conversions;
import org.apache.avro.LogicalType;
import org.apache.avro.LogicalTypes;
import org.apache.avro.Schema;
import org.apache.avro.data.TimeConversions;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF3;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Spark SQL UDF: a Kafka value in Confluent's Avro wire format to the JSON text of the record,
 * resolved to the reader schema, so that Avro records go down the same validation path as JSON
 * ones.
 *
 * <p>Wire format: byte 0 is the magic byte 0, bytes 1-4 the writer schema's id in the schema
 * registry (big-endian int), the rest the record's Avro binary encoding with that schema.
 *
 * <p>Arguments: the value bytes, the registry's base URL and the reader schema's JSON text. Result:
 * a struct {@code (json, error)} with exactly one of the two set (both null for a null value).
 * Error codes, stable: {@code avro_bad_framing}, {@code avro_unknown_schema_id:<id>}, {@code
 * avro_unreadable_schema:<id>}, {@code avro_corrupt_body:<id>}. A registry that does not answer is
 * never an error: the call waits for it (see {@link SchemaRegistry}).
 *
 * <p>JSON rendering, in reader field order: strings, numbers and booleans as themselves; decimals
 * as plain numbers with their scale (19.90); timestamp-micros and timestamp-millis as ISO-8601 UTC
 * text ({@link Instant#toString()}); enums as their symbol; other bytes and fixed as base64 text.
 */
public final class ConfluentAvroToJson implements UDF3<byte[], String, String, Row> {
  private static final long serialVersionUID = 1L;

  static final String BAD_FRAMING = "avro_bad_framing";
  static final String UNKNOWN_SCHEMA_ID = "avro_unknown_schema_id:";
  static final String UNREADABLE_SCHEMA = "avro_unreadable_schema:";
  static final String CORRUPT_BODY = "avro_corrupt_body:";

  private static final Logger LOG = LoggerFactory.getLogger(ConfluentAvroToJson.class);
  private static final int HEADER = 5;
  private static final JsonFactory JSON = new JsonFactory();
  private static final GenericData MODEL = model();
  private static final Map<String, Schema> READER_SCHEMAS = new ConcurrentHashMap<>();
  private static final Map<PairKey, Resolution> RESOLUTIONS = new ConcurrentHashMap<>();
  // Per thread (Spark runs several tasks per JVM at once, and a DatumReader and a decoder
  // are not for sharing): the last resolution used for each writer id, with its reader.
  // Looked up by id and then compared, because Spark hands the reader schema over as a new
  // String on every row and hashing 3 KB of it per record would cost more than the decoding.
  private static final ThreadLocal<Map<Integer, Hit>> HITS = ThreadLocal.withInitial(HashMap::new);
  private static final ThreadLocal<BinaryDecoder> DECODER = new ThreadLocal<>();

  @Override
  public Row call(byte[] value, String registryUrl, String readerSchema) {
    if (value == null) {
      return RowFactory.create(null, null);
    }
    Objects.requireNonNull(registryUrl, "the schema registry URL");
    Objects.requireNonNull(readerSchema, "the reader schema");
    if (value.length < HEADER || value[0] != 0) {
      return error(BAD_FRAMING);
    }
    int id = ByteBuffer.wrap(value, 1, 4).getInt();
    Hit hit = hit(registryUrl, id, readerSchema);
    if (hit == null) {
      return error(UNKNOWN_SCHEMA_ID + id);
    }
    if (hit.reader == null) {
      return error(UNREADABLE_SCHEMA + id);
    }
    Object record;
    BinaryDecoder decoder =
        DecoderFactory.get().binaryDecoder(value, HEADER, value.length - HEADER, DECODER.get());
    DECODER.set(decoder);
    try {
      record = hit.reader.read(null, decoder);
      // A body longer than its record was not written with this schema, whatever the prefix
      // looked like.
      if (!decoder.isEnd()) {
        return error(CORRUPT_BODY + id);
      }
    } catch (AvroTypeException e) {
      // Thrown where resolution meets what it cannot do: a reader field the writer lacks
      // without a default, a type that does not promote, an enum symbol the reader lacks.
      hit.resolution.report(registryUrl, id, e.getMessage());
      return error(UNREADABLE_SCHEMA + id);
    } catch (IOException | RuntimeException e) {
      // EOF before the record's end, a negative length, a union branch out of range, ...
      return error(CORRUPT_BODY + id);
    }
    try {
      return RowFactory.create(render(record), null);
    } catch (IOException | RuntimeException e) {
      return error(CORRUPT_BODY + id);
    }
  }

  private static Row error(String reason) {
    return RowFactory.create(null, reason);
  }

  /** This thread's reader for a writer id and reader schema; null when the id is unknown. */
  private static Hit hit(String registryUrl, int id, String readerText) {
    Map<Integer, Hit> hits = HITS.get();
    Hit hit = hits.get(id);
    if (hit != null && hit.readerText.equals(readerText) && hit.registryUrl.equals(registryUrl)) {
      return hit;
    }
    Resolution resolution = resolution(registryUrl, id, readerText);
    if (resolution == null) {
      return null;
    }
    hit = new Hit(registryUrl, readerText, resolution);
    hits.put(id, hit);
    return hit;
  }

  /**
   * The resolution of a writer id and reader schema, shared by the threads; null when the id is
   * unknown.
   */
  private static Resolution resolution(String registryUrl, int id, String readerText) {
    PairKey key = new PairKey(registryUrl, id, readerText);
    Resolution found = RESOLUTIONS.get(key);
    if (found != null) {
      return found;
    }
    SchemaRegistry.Lookup writer = SchemaRegistry.lookup(registryUrl, id);
    if (writer.unknown) {
      return null;
    }
    Resolution made =
        writer.schema == null
            ? new Resolution(null, null, writer.unusable)
            : new Resolution(writer.schema, readerSchema(readerText), null);
    Resolution raced = RESOLUTIONS.putIfAbsent(key, made);
    if (raced != null) {
      return raced;
    }
    if (made.unusable != null) {
      made.report(registryUrl, id, made.unusable);
    }
    return made;
  }

  private static Schema readerSchema(String text) {
    // The reader schema is the project's own contract: a text that does not parse is a bug to
    // fail on, not a record to dead-letter.
    return READER_SCHEMAS.computeIfAbsent(text, t -> new Schema.Parser().parse(t));
  }

  private static GenericData model() {
    GenericData model = new GenericData();
    model.addLogicalTypeConversion(new Conversions.DecimalConversion());
    model.addLogicalTypeConversion(new TimeConversions.TimestampMicrosConversion());
    model.addLogicalTypeConversion(new TimeConversions.TimestampMillisConversion());
    // The classic reader: its resolution errors are AvroTypeExceptions at read time, which
    // is what tells an unreadable schema from a corrupt body.
    model.setFastReaderEnabled(false);
    return model;
  }

  private record PairKey(String registryUrl, int id, String readerText) {}

  /** A writer schema to resolve to a reader schema, or why it cannot be. */
  private static final class Resolution {
    final Schema writer;
    final Schema reader;
    final String unusable;
    private final AtomicBoolean reported = new AtomicBoolean();

    Resolution(Schema writer, Schema reader, String unusable) {
      this.writer = writer;
      this.reader = reader;
      this.unusable =
          unusable != null ? unusable : logicalMismatch(writer, reader, "", new HashSet<>());
    }

    /**
     * Say once per JVM why a writer schema's records are dead letters: a dead letter carries
     * the code only, and the reason is what whoever fixes the producer needs.
     */
    void report(String registryUrl, int id, String why) {
      if (reported.compareAndSet(false, true)) {
        LOG.warn(
            "schema id {} of schema registry {} cannot be read as the reader schema ({}): its"
                + " records are dead letters ({}{})",
            id,
            registryUrl,
            why,
            UNREADABLE_SCHEMA,
            id);
      }
    }
  }

  /** One thread's reader of a resolution (null when it is unusable), and what it is for. */
  private static final class Hit {
    final String registryUrl;
    final String readerText;
    final Resolution resolution;
    final GenericDatumReader<Object> reader;

    Hit(String registryUrl, String readerText, Resolution resolution) {
      this.registryUrl = registryUrl;
      this.readerText = readerText;
      this.resolution = resolution;
      this.reader =
          resolution.unusable == null
              ? new GenericDatumReader<>(resolution.writer, resolution.reader, MODEL)
              : null;
    }
  }

  /**
   * Avro resolves types, not their meaning: a writer's timestamp-millis read as
   * timestamp-micros, or a decimal of another scale, would be read without error and come out
   * wrong by a factor of 1000 or 10. Where the reader gives a value a meaning (a logical type),
   * the writer must give it the same one; returns what differs, or null.
   */
  static String logicalMismatch(
      Schema writer, Schema reader, String path, Set<List<Object>> seen) {
    if (reader.getType() == Schema.Type.UNION) {
      for (Schema branch : reader.getTypes()) {
        String found = logicalMismatch(writer, branch, path, seen);
        if (found != null) {
          return found;
        }
      }
      return null;
    }
    if (writer.getType() == Schema.Type.UNION) {
      for (Schema branch : writer.getTypes()) {
        String found = logicalMismatch(branch, reader, path, seen);
        if (found != null) {
          return found;
        }
      }
      return null;
    }
    if (writer.getType() != reader.getType()) {
      // Not the same type: Avro's own resolution promotes it or refuses it.
      return null;
    }
    switch (reader.getType()) {
      case RECORD:
        // A recursive schema meets the same pair of records again: once is enough.
        if (!seen.add(List.of(new Identity(writer), new Identity(reader)))) {
          return null;
        }
        for (Schema.Field field : reader.getFields()) {
          Schema.Field written = writerField(writer, field);
          if (written != null) {
            String found =
                logicalMismatch(written.schema(), field.schema(), path + "/" + field.name(), seen);
            if (found != null) {
              return found;
            }
          }
        }
        return null;
      case ARRAY:
        return logicalMismatch(writer.getElementType(), reader.getElementType(), path + "[]", seen);
      case MAP:
        return logicalMismatch(writer.getValueType(), reader.getValueType(), path + "{}", seen);
      default:
        return sameMeaning(writer.getLogicalType(), reader.getLogicalType())
            ? null
            : (path.isEmpty() ? "/" : path)
                + ": written as "
                + describe(writer.getLogicalType())
                + ", read as "
                + describe(reader.getLogicalType());
    }
  }

  /** A schema compared by identity: Schema.equals walks the whole (maybe recursive) tree. */
  private record Identity(Schema schema) {
    @Override
    public boolean equals(Object other) {
      return other instanceof Identity && ((Identity) other).schema == schema;
    }

    @Override
    public int hashCode() {
      return System.identityHashCode(schema);
    }
  }

  private static Schema.Field writerField(Schema writer, Schema.Field readerField) {
    Schema.Field written = writer.getField(readerField.name());
    if (written == null) {
      for (String alias : readerField.aliases()) {
        written = writer.getField(alias);
        if (written != null) {
          break;
        }
      }
    }
    return written;
  }

  private static boolean sameMeaning(LogicalType written, LogicalType read) {
    if (read == null) {
      return true;
    }
    if (written == null || !written.getName().equals(read.getName())) {
      return false;
    }
    if (read instanceof LogicalTypes.Decimal) {
      int scale = ((LogicalTypes.Decimal) read).getScale();
      return ((LogicalTypes.Decimal) written).getScale() == scale;
    }
    return true;
  }

  private static String describe(LogicalType type) {
    if (type == null) {
      return "no logical type";
    }
    if (type instanceof LogicalTypes.Decimal) {
      return "decimal with scale " + ((LogicalTypes.Decimal) type).getScale();
    }
    return type.getName();
  }

  private static String render(Object datum) throws IOException {
    StringWriter out = new StringWriter(256);
    try (JsonGenerator json = JSON.createGenerator(out)) {
      write(json, datum);
    }
    return out.toString();
  }

  private static void write(JsonGenerator json, Object datum) throws IOException {
    if (datum == null) {
      json.writeNull();
    } else if (datum instanceof CharSequence) {
      json.writeString(datum.toString());
    } else if (datum instanceof Integer) {
      json.writeNumber((Integer) datum);
    } else if (datum instanceof Long) {
      json.writeNumber((Long) datum);
    } else if (datum instanceof BigDecimal) {
      // Plain notation with the schema's scale: 19.90, never 1.99E+1.
      json.writeNumber(((BigDecimal) datum).toPlainString());
    } else if (datum instanceof Instant) {
      json.writeString(datum.toString());
    } else if (datum instanceof Boolean) {
      json.writeBoolean((Boolean) datum);
    } else if (datum instanceof Double) {
      json.writeNumber((Double) datum);
    } else if (datum instanceof Float) {
      json.writeNumber((Float) datum);
    } else if (datum instanceof GenericRecord) {
      GenericRecord record = (GenericRecord) datum;
      json.writeStartObject();
      List<Schema.Field> fields = record.getSchema().getFields();
      for (Schema.Field field : fields) {
        json.writeFieldName(field.name());
        write(json, record.get(field.pos()));
      }
      json.writeEndObject();
    } else if (datum instanceof Map) {
      json.writeStartObject();
      for (Map.Entry<?, ?> entry : ((Map<?, ?>) datum).entrySet()) {
        json.writeFieldName(entry.getKey().toString());
        write(json, entry.getValue());
      }
      json.writeEndObject();
    } else if (datum instanceof Collection) {
      json.writeStartArray();
      for (Object element : (Collection<?>) datum) {
        write(json, element);
      }
      json.writeEndArray();
    } else if (datum instanceof GenericEnumSymbol) {
      json.writeString(datum.toString());
    } else if (datum instanceof ByteBuffer) {
      ByteBuffer bytes = ((ByteBuffer) datum).duplicate();
      byte[] copy = new byte[bytes.remaining()];
      bytes.get(copy);
      json.writeBinary(copy);
    } else if (datum instanceof GenericFixed) {
      json.writeBinary(((GenericFixed) datum).bytes());
    } else {
      json.writeString(datum.toString());
    }
  }
}
