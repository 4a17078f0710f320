/* Unit tests for s3/s3xml (S3 XML replies) and the pure helpers of s3 (multipart ETag, metadata). */
#include <errno.h>

#include "check.h"
#include "kvsfs/buf.h"
#include "kvsfs/s3.h"
#include "kvsfs/s3xml.h"

static const char list_page1[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>b</Name><Prefix>dir/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
	"<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
	"<NextContinuationToken>tok+/=1</NextContinuationToken>"
	"<Contents><Key>dir/a &amp; b.txt</Key><LastModified>2024-02-29T12:34:56.789Z</LastModified>"
	"<ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag><Size>1</Size>"
	"<StorageClass>STANDARD</StorageClass><Owner><ID>o</ID></Owner></Contents>"
	"<Contents>\n  <Key>dir/&#xE9;t&#233;</Key>\n  <Size>0</Size>\n"
	"  <ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag>\n</Contents>"
	"<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>dir/&lt;x&gt;/</Prefix></CommonPrefixes>"
	"</ListBucketResult>";

static const char list_page2[] =
	"<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>1</KeyCount>"
	"<Contents><Key>dir/z</Key><Size>5368709121</Size><ETag>\"abc-2\"</ETag></Contents>"
	"<Contents><Key/><Size>1</Size></Contents>"
	"</ListBucketResult>";

static void test_list(void)
{
	struct s3xml_list l = { 0 };
	CHECK_INT(s3xml_parse_list_v2(list_page1, sizeof(list_page1) - 1, &l), 0, "page 1 parses");
	CHECK_INT(l.n_objects, 2, "two objects");
	CHECK_STR(l.objects[0].key, "dir/a & b.txt", "entity in key decoded");
	CHECK_INT(l.objects[0].size, 1, "size");
	CHECK_STR(l.objects[0].etag, "0cc175b9c0f1b6a831c399e269772661", "etag unquoted (&quot;)");
	CHECK_INT(l.objects[0].last_modified, 1709210096, "LastModified parsed");
	CHECK_STR(l.objects[1].key, "dir/\xc3\xa9t\xc3\xa9", "character references as UTF-8");
	CHECK_STR(l.objects[1].etag, "d41d8cd98f00b204e9800998ecf8427e", "etag unquoted (\")");
	CHECK_INT(l.objects[1].last_modified, -1, "missing LastModified is -1");
	CHECK_INT(l.n_prefixes, 2, "two common prefixes");
	CHECK_STR(l.prefixes[0], "dir/sub/", "prefix 1");
	CHECK_STR(l.prefixes[1], "dir/<x>/", "prefix 2 decoded");
	CHECK_INT(l.truncated, 1, "truncated");
	CHECK_STR(l.next_token, "tok+/=1", "continuation token");
	CHECK_INT(l.key_count, 3, "key count");

	CHECK_INT(s3xml_parse_list_v2(list_page2, sizeof(list_page2) - 1, &l), 0, "page 2 parses");
	CHECK_INT(l.n_objects, 4, "page 2 appended");
	CHECK_INT(l.objects[2].size, 5368709121LL, "64-bit size");
	CHECK_STR(l.objects[2].etag, "abc-2", "multipart etag");
	CHECK_STR(l.objects[3].key, "", "self-closing key is empty");
	CHECK_INT(l.truncated, 0, "last page not truncated");
	CHECK(l.next_token == NULL, "no token on the last page");
	s3xml_list_free(&l);
	CHECK(l.objects == NULL && l.n_objects == 0, "free zeroes");

	static const char empty[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
				    "</ListBucketResult>";
	CHECK_INT(s3xml_parse_list_v2(empty, sizeof(empty) - 1, &l), 0, "empty listing");
	CHECK_INT(l.n_objects + l.n_prefixes, 0, "nothing listed");
	s3xml_list_free(&l);

	/* malformed */
	static const char *bad[] = {
		"",
		"not xml",
		"<Error><Code>NoSuchBucket</Code></Error>",
		"<ListBucketResult><Contents><Key>a</Key><Size>1</Size>",      /* cut */
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", /* no key */
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999</Size></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size></Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Contents></ListBucketResult>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(s3xml_parse_list_v2(bad[i], strlen(bad[i]), &l), -EIO, "malformed %zu", i);
		s3xml_list_free(&l);
	}
	/* a similar element name is not the element */
	static const char similar[] = "<ListBucketResult><ContentsX><Key>a</Key></ContentsX>"
				      "<Contents ><Key>b</Key></Contents></ListBucketResult>";
	CHECK_INT(s3xml_parse_list_v2(similar, sizeof(similar) - 1, &l), 0, "similar names");
	CHECK(l.n_objects == 1 && !strcmp(l.objects[0].key, "b"), "only <Contents> counts");
	s3xml_list_free(&l);
}

static void test_uploads(void)
{
	static const char doc[] =
		"<?xml version=\"1.0\"?><ListMultipartUploadsResult xmlns=\"x\"><Bucket>b</Bucket>"
		"<KeyMarker></KeyMarker><NextKeyMarker>k2</NextKeyMarker>"
		"<NextUploadIdMarker>id2</NextUploadIdMarker><IsTruncated>true</IsTruncated>"
		"<Upload><Key>k1</Key><UploadId>2~abc</UploadId><Initiator><ID>i</ID></Initiator>"
		"<Initiated>2020-01-01T00:00:00.000Z</Initiated></Upload>"
		"<Upload><Key>k2</Key><UploadId>id2</UploadId></Upload>"
		"</ListMultipartUploadsResult>";
	struct s3xml_uploads u = { 0 };
	CHECK_INT(s3xml_parse_list_uploads(doc, sizeof(doc) - 1, &u), 0, "uploads parse");
	CHECK_INT(u.n, 2, "two uploads");
	CHECK_STR(u.v[0].key, "k1", "upload key");
	CHECK_STR(u.v[0].upload_id, "2~abc", "upload id");
	CHECK_INT(u.v[0].initiated, 1577836800, "initiated");
	CHECK_INT(u.v[1].initiated, -1, "no initiated");
	CHECK_INT(u.truncated, 1, "truncated");
	CHECK_STR(u.next_key_marker, "k2", "next key marker");
	CHECK_STR(u.next_upload_id_marker, "id2", "next upload id marker");
	s3xml_uploads_free(&u);
	static const char noid[] = "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
				   "</ListMultipartUploadsResult>";
	CHECK_INT(s3xml_parse_list_uploads(noid, sizeof(noid) - 1, &u), -EIO, "upload without id");
	s3xml_uploads_free(&u);
	/* a page as Ceph RGW sends it (tests/fuzz/corpus/s3xml/list-uploads-rgw-page): Initiator and
	 * Owner blocks inside each Upload, entities and UTF-8 in keys and markers */
	static const char rgw[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult "
		"xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>exports</Bucket><Prefix>kvs/"
		"</Prefix><NextKeyMarker>kvs/c &amp; &lt;1&gt;.mp4</NextKeyMarker><NextUploadIdMarker>"
		"2~8BeE</NextUploadIdMarker><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
		"<Upload><Key>kvs/a b/\xc3\xa9t\xc3\xa9.bin</Key><UploadId>2~unm4</UploadId><Initiator>"
		"<ID>test</ID><DisplayName>test</DisplayName></Initiator><Owner><ID>test</ID>"
		"<DisplayName>test</DisplayName></Owner><StorageClass>STANDARD</StorageClass><Initiated>"
		"2026-12-03T15:53:15.784Z</Initiated></Upload><Upload><Key>kvs/c &amp; &lt;1&gt;.mp4</Key>"
		"<UploadId>2~8BeE</UploadId><Initiator><ID>test</ID><DisplayName>test</DisplayName>"
		"</Initiator><Owner><ID>test</ID><DisplayName>test</DisplayName></Owner><StorageClass>"
		"STANDARD</StorageClass><Initiated>2026-12-03T15:53:15.832Z</Initiated></Upload>"
		"</ListMultipartUploadsResult>";
	CHECK_INT(s3xml_parse_list_uploads(rgw, sizeof(rgw) - 1, &u), 0, "RGW uploads page parses");
	CHECK(u.n == 2 && !strcmp(u.v[0].key, "kvs/a b/\xc3\xa9t\xc3\xa9.bin") &&
	      !strcmp(u.v[1].key, "kvs/c & <1>.mp4") && !strcmp(u.v[1].upload_id, "2~8BeE"),
	      "RGW uploads: decoded keys and ids");
	CHECK(u.truncated == 1 && !strcmp(u.next_key_marker, "kvs/c & <1>.mp4") &&
	      !strcmp(u.next_upload_id_marker, "2~8BeE"), "RGW uploads: markers");
	s3xml_uploads_free(&u);
}

static void test_results(void)
{
	char *id = NULL;
	static const char init[] = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
				   "<UploadId>2~x&amp;y</UploadId></InitiateMultipartUploadResult>";
	CHECK_INT(s3xml_parse_initiate(init, sizeof(init) - 1, &id), 0, "initiate parses");
	CHECK_STR(id, "2~x&y", "upload id decoded");
	free(id);
	static const char init_empty[] = "<InitiateMultipartUploadResult><UploadId></UploadId>"
					 "</InitiateMultipartUploadResult>";
	CHECK_INT(s3xml_parse_initiate(init_empty, sizeof(init_empty) - 1, &id), -EIO,
		  "empty upload id rejected");
	CHECK(id == NULL, "no id on failure");

	char etag[S3XML_ETAG_MAX];
	static const char rgw[] = "<CompleteMultipartUploadResult><Location>l</Location>"
				  "<Bucket>b</Bucket><Key>k</Key><ETag></ETag>"
				  "</CompleteMultipartUploadResult>";
	CHECK_INT(s3xml_parse_etag_result(rgw, sizeof(rgw) - 1, "CompleteMultipartUploadResult",
					  etag), 0, "RGW complete parses");
	CHECK_STR(etag, "", "RGW's empty ETag");
	static const char aws[] = "<CompleteMultipartUploadResult><ETag>&quot;3858f62230ac3c915f300c"
				  "664312c11f-9&quot;</ETag></CompleteMultipartUploadResult>";
	CHECK_INT(s3xml_parse_etag_result(aws, sizeof(aws) - 1, "CompleteMultipartUploadResult",
					  etag), 0, "AWS complete parses");
	CHECK_STR(etag, "3858f62230ac3c915f300c664312c11f-9", "multipart etag");
	static const char err200[] = "\n\n<Error><Code>InternalError</Code></Error>";
	CHECK_INT(s3xml_parse_etag_result(err200, sizeof(err200) - 1,
					  "CompleteMultipartUploadResult", etag), -EIO,
		  "error document with 200 is a failure");
	char root[32];
	CHECK(s3xml_root(err200, sizeof(err200) - 1, root, sizeof(root)) == 1, "root found");
	CHECK_STR(root, "Error", "root name");
	static const char copy[] = "<CopyObjectResult><LastModified>2009-10-12T17:50:30.000Z"
				   "</LastModified><ETag>\"9b2cf535f27731c974343645a3985328\"</ETag>"
				   "</CopyObjectResult>";
	CHECK_INT(s3xml_parse_etag_result(copy, sizeof(copy) - 1, "CopyObjectResult", etag), 0,
		  "copy result");
	CHECK_STR(etag, "9b2cf535f27731c974343645a3985328", "copy etag");
}

static void test_helpers(void)
{
	char *d = NULL;
	CHECK_INT(s3xml_decode("a&bogus;&#0;&#x110000;&#65;&lt", 30, &d), 0, "decode");
	CHECK_STR(d, "a&bogus;&#0;&#x110000;A&lt", "bad references kept literally");
	free(d);
	CHECK_INT(s3xml_parse_time("2009-10-12T17:50:30Z", 20), 1255369830, "time without fraction");
	CHECK_INT(s3xml_parse_time("2009-10-12T17:50:30", 19), 1255369830, "time without Z");
	CHECK_INT(s3xml_parse_time("2009-13-12T17:50:30Z", 20), -1, "bad month");
	CHECK_INT(s3xml_parse_time("2009-10-12 17:50:30Z", 20), -1, "bad separator");
	CHECK_INT(s3xml_parse_time("", 0), -1, "empty time");
	struct buf b = BUF_INIT;
	CHECK_INT(s3xml_escape(&b, "a<&>\"'z", 7), 0, "escape");
	CHECK_STR(buf_str(&b), "a&lt;&amp;&gt;&quot;&apos;z", "escaped");
	buf_free(&b);
	const char *v;
	size_t vl;
	CHECK_INT(s3xml_find("<a x='>'>v</a >", 15, "a", &v, &vl), 1, "quoted '>' in attribute");
	CHECK(vl == 1 && v[0] == 'v', "content after attribute");
	CHECK_INT(s3xml_find("<a>v</b>", 8, "a", &v, &vl), -1, "no end tag");
	CHECK_INT(s3xml_find("<b>v</b>", 8, "a", &v, &vl), 0, "absent");

	/* s3 helpers */
	struct s3_part parts[2] = {
		{ 1, "0cc175b9c0f1b6a831c399e269772661" },  /* md5("a") */
		{ 2, "92eb5ffee6ae2fec3ad71c777531578f" },  /* md5("b") */
	};
	char etag[S3_ETAG_MAX];
	CHECK_INT(s3_multipart_etag(parts, 2, etag), 0, "multipart etag");
	/* md5(md5("a") || md5("b")) computed with Python hashlib */
	CHECK_STR(etag, "96e024ba2074fe77e8e965ba43a704be-2", "multipart etag value");
	struct s3_part badp = { 1, "xyz" };
	CHECK_INT(s3_multipart_etag(&badp, 1, etag), -EINVAL, "non-MD5 part etag");

	struct s3_object_info info = { 0 };
	s3_meta_add(&info.meta, "mtime", "1700000000.5");
	s3_meta_add(&info.meta, "mode", "0100644");
	s3_meta_add(&info.meta, "bad", "12x");
	int64_t x = 0;
	CHECK_INT(s3_meta_get_int64(&info, "MTIME", 0, &x), 0, "mtime parses");
	CHECK_INT(x, 1700000000, "mtime value (fraction cut)");
	CHECK_INT(s3_meta_get_int64(&info, "mode", 1, &x), 0, "octal mode");
	CHECK_INT(x, 0100644, "mode value");
	CHECK_INT(s3_meta_get_int64(&info, "bad", 0, &x), -EINVAL, "not a number");
	CHECK_INT(s3_meta_get_int64(&info, "none", 0, &x), -ENOENT, "absent");
	s3_object_info_free(&info);
}

int main(void)
{
	test_list();
	test_uploads();
	test_results();
	test_helpers();
	return check_done();
}
