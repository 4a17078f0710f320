// webm_reader: the only C++ in kvsfs; a thin wrapper that lets mkv.c decode one Matroska metadata
// element at a time with libwebm's webm_parser (see webm_reader.h for the contract).
//
// Design: one webm::WebmParser per wrapper. mkv_wr_parse() calls DidSeek(), which makes libwebm
// accept any element whose place in the Matroska tree it knows (EBML, Info, Tracks, TrackEntry,
// Tags, Tag, ...) as the first element of its input, then feeds the whole element through a
// Reader that reports end-of-file after its last byte. The element is always given whole, in one
// Feed: libwebm's resume-after-"would block" paths are never used, because Debian builds
// libwebm with assertions on and some of those paths assert on malformed input (e.g. an element
// ID straddling its parent's end when input pauses right there), which would abort the daemon.
// libwebm itself stores decoded values (strings, vectors); mkv.c bounds that memory by skipping
// large elements from the element() callback. Exceptions (std::bad_alloc) are caught and reported
// as MKV_WR_NOMEM.
#include "webm_reader.h"

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include <webm/callback.h>
#include <webm/reader.h>
#include <webm/status.h>
#include <webm/webm_parser.h>

namespace {

class ChunkReader : public webm::Reader {
public:
	const std::uint8_t *data = nullptr;
	std::size_t len = 0, off = 0;
	bool eof = false;
	std::uint64_t base = 0; // stream offset of data[0]

	webm::Status Read(std::size_t num_to_read, std::uint8_t *buffer,
			  std::uint64_t *num_actually_read) override
	{
		std::size_t avail = len - off;
		*num_actually_read = 0;
		if (avail == 0)
			return webm::Status(eof ? webm::Status::kEndOfFile : webm::Status::kWouldBlock);
		std::size_t k = num_to_read < avail ? num_to_read : avail;
		std::memcpy(buffer, data + off, k);
		off += k;
		*num_actually_read = k;
		return webm::Status(k == num_to_read ? webm::Status::kOkCompleted : webm::Status::kOkPartial);
	}

	webm::Status Skip(std::uint64_t num_to_skip, std::uint64_t *num_actually_skipped) override
	{
		std::size_t avail = len - off;
		*num_actually_skipped = 0;
		if (avail == 0)
			return webm::Status(eof ? webm::Status::kEndOfFile : webm::Status::kWouldBlock);
		std::uint64_t k = num_to_skip < avail ? num_to_skip : avail;
		off += static_cast<std::size_t>(k);
		*num_actually_skipped = k;
		return webm::Status(k == num_to_skip ? webm::Status::kOkCompleted : webm::Status::kOkPartial);
	}

	std::uint64_t Position() const override { return base + off; }
};

class EventCallback : public webm::Callback {
public:
	mkv_wr_events ev{};

	webm::Status OnElementBegin(const webm::ElementMetadata &metadata, webm::Action *action) override
	{
		*action = webm::Action::kRead;
		if (!ev.element)
			return ok();
		int skip = 0;
		std::uint64_t size = metadata.size == webm::kUnknownElementSize ? MKV_WR_UNKNOWN_SIZE : metadata.size;
		int rc = ev.element(ev.opaque, static_cast<std::uint32_t>(metadata.id), size, &skip);
		if (rc)
			return webm::Status(rc);
		if (skip)
			*action = webm::Action::kSkip;
		return ok();
	}

	webm::Status OnEbml(const webm::ElementMetadata &, const webm::Ebml &ebml) override
	{
		if (!ev.ebml)
			return ok();
		const std::string &dt = ebml.doc_type.value();
		return status(ev.ebml(ev.opaque, dt.data(), dt.size()));
	}

	webm::Status OnInfo(const webm::ElementMetadata &, const webm::Info &info) override
	{
		if (!ev.info)
			return ok();
		return status(ev.info(ev.opaque, info.timecode_scale.value()));
	}

	webm::Status OnTrackEntry(const webm::ElementMetadata &, const webm::TrackEntry &t) override
	{
		if (!ev.track)
			return ok();
		mkv_wr_track out{};
		out.number = t.track_number.value();
		out.uid = t.track_uid.value();
		out.type = static_cast<std::uint64_t>(t.track_type.value());
		out.default_duration = t.default_duration.value();
		out.codec_id = t.codec_id.value().data();
		out.codec_id_len = t.codec_id.value().size();
		if (t.video.is_present()) {
			out.has_video = 1;
			out.width = t.video.value().pixel_width.value();
			out.height = t.video.value().pixel_height.value();
		}
		if (t.audio.is_present()) {
			out.has_audio = 1;
			out.sampling_frequency = t.audio.value().sampling_frequency.value();
			out.channels = t.audio.value().channels.value();
		}
		return status(ev.track(ev.opaque, &out));
	}

	webm::Status OnTag(const webm::ElementMetadata &, const webm::Tag &tag) override
	{
		for (const auto &st : tag.tags) {
			int rc = simple_tag(st.value(), 0);
			if (rc)
				return webm::Status(rc);
		}
		return ok();
	}

	// Cues, chapters and frames are never requested by mkv.c; the defaults skip them.

private:
	static webm::Status ok() { return webm::Status(webm::Status::kOkCompleted); }
	static webm::Status status(int rc) { return rc ? webm::Status(rc) : ok(); }

	int simple_tag(const webm::SimpleTag &st, int depth)
	{
		if (ev.simple_tag) {
			const std::string &name = st.name.value();
			const char *value = nullptr;
			std::size_t value_len = 0;
			if (st.string.is_present()) {
				value = st.string.value().data();
				value_len = st.string.value().size();
			}
			int rc = ev.simple_tag(ev.opaque, name.data(), name.size(), value, value_len);
			if (rc)
				return rc;
		}
		if (depth >= 8) // libwebm bounds recursion too; stay shallow here
			return 0;
		for (const auto &child : st.tags) {
			int rc = simple_tag(child.value(), depth + 1);
			if (rc)
				return rc;
		}
		return 0;
	}
};

} // namespace

struct mkv_wr {
	webm::WebmParser parser;
	ChunkReader reader;
	EventCallback cb;
};

extern "C" struct mkv_wr *mkv_wr_new(const struct mkv_wr_events *ev)
{
	try {
		mkv_wr *w = new mkv_wr;
		w->cb.ev = *ev;
		return w;
	} catch (...) {
		return nullptr;
	}
}

extern "C" void mkv_wr_free(struct mkv_wr *w)
{
	delete w;
}

extern "C" int mkv_wr_parse(struct mkv_wr *w, std::uint64_t pos, const std::uint8_t *p, std::size_t n)
{
	w->parser.DidSeek();
	w->reader.data = p;
	w->reader.len = n;
	w->reader.off = 0;
	w->reader.eof = true;
	w->reader.base = pos;
	webm::Status st;
	try {
		st = w->parser.Feed(&w->cb, &w->reader);
	} catch (const std::bad_alloc &) {
		return MKV_WR_NOMEM;
	} catch (...) {
		return MKV_WR_INVALID;
	}
	w->reader.data = nullptr;
	w->reader.len = w->reader.off = 0;
	if (st.code > 0)
		return st.code; // a callback's abort code
	if (st.completed_ok())
		return 0;
	if (st.code == webm::Status::kEndOfFile || st.code == webm::Status::kWouldBlock)
		return MKV_WR_TRUNCATED;
	if (st.code == webm::Status::kNotEnoughMemory)
		return MKV_WR_NOMEM;
	return MKV_WR_INVALID;
}
